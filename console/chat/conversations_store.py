"""Saved chat conversations, in the app's database: the chat panel saves every finished exchange and can
reopen any conversation later. Turns are append-only; the in-memory form is `console.chat.conversation`.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.chat.conversation import Conversation, Turn
from console.storage.database import AppDatabase
from console.errors import ConsoleError
from console.storage.timestamps import now_iso

TITLE_LENGTH = 60


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    model_name: str | None
    created_at: str
    updated_at: str
    message_count: int


def title_for(conversation: Conversation) -> str:
    first = next((turn.content for turn in conversation.turns if turn.role == "user"), "")
    line = " ".join(first.split())
    if not line:
        return "Untitled conversation"
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class ConversationStore:
    def __init__(self, database: AppDatabase):
        self.database = database

    def save(
        self,
        conversation: Conversation,
        conversation_id: int | None = None,
        model_name: str | None = None,
        reply_figures: dict | None = None,
    ) -> int:
        """Store the turns not stored yet (and the system prompt); returns the conversation's id.

        `reply_figures` (prompt_tokens, completion_tokens, tokens_per_second, finish_reason) go with the last
        assistant turn.
        """
        now = now_iso()
        with self.database.write() as db:
            if conversation_id is None or not db.execute(
                "select 1 from conversations where id = ?", [conversation_id]
            ).fetchone():
                conversation_id = db["conversations"].insert(
                    {"title": title_for(conversation), "system_prompt": conversation.system_prompt,
                     "model_name": model_name, "created_at": now, "updated_at": now}
                ).last_pk
            stored = db.execute("select count(*) from messages where conversation_id = ?", [conversation_id]).fetchone()[0]
            if stored > len(conversation.turns):
                db.execute("delete from messages where conversation_id = ? and position >= ?",
                           [conversation_id, len(conversation.turns)])
                stored = len(conversation.turns)
            last = len(conversation.turns) - 1
            rows = []
            for position in range(stored, len(conversation.turns)):
                turn = conversation.turns[position]
                row = {"conversation_id": conversation_id, "position": position, "role": turn.role,
                       "content": turn.content, "created_at": now}
                if position == last and turn.role == "assistant" and reply_figures:
                    row.update({key: reply_figures.get(key) for key in
                                ("prompt_tokens", "completion_tokens", "tokens_per_second", "finish_reason")})
                rows.append(row)
            if rows:
                db["messages"].insert_all(rows, alter=False)
            db.execute(
                "update conversations set title = ?, system_prompt = ?, updated_at = ?, "
                "model_name = coalesce(?, model_name) where id = ?",
                [title_for(conversation), conversation.system_prompt, now, model_name, conversation_id],
            )
        return conversation_id

    def list(self, limit: int = 200) -> list[ConversationSummary]:
        """The conversation with the latest message first (message ids grow; timestamps only say the second)."""
        with self.database.read() as db:
            rows = db.execute(
                "select c.id, c.title, c.model_name, c.created_at, c.updated_at, count(m.id) "
                "from conversations c left join messages m on m.conversation_id = c.id "
                "group by c.id order by coalesce(max(m.id), 0) desc, c.id desc limit ?",
                [limit],
            ).fetchall()
        return [ConversationSummary(*row) for row in rows]

    def open(self, conversation_id: int) -> Conversation:
        with self.database.read() as db:
            head = db.execute("select system_prompt from conversations where id = ?", [conversation_id]).fetchone()
            if head is None:
                raise ConsoleError(f"Conversation {conversation_id} no longer exists.")
            turns = db.execute(
                "select role, content from messages where conversation_id = ? order by position", [conversation_id]
            ).fetchall()
        return Conversation(system_prompt=head[0] or "", turns=[Turn(role, content) for role, content in turns])

    def delete(self, conversation_id: int) -> None:
        with self.database.write() as db:
            db.execute("delete from messages where conversation_id = ?", [conversation_id])
            db.execute("delete from conversations where id = ?", [conversation_id])
