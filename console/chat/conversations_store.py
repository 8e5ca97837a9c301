"""Saved chat conversations, in the app's database: the chat panel saves every finished exchange and can
reopen any conversation later. Turns are append-only; the in-memory form is `console.chat.conversation`.

Each conversation belongs to the user who had it: a user lists and opens their own. Seeing anyone else's needs
`conversations:view_all` (administrators) and is audited; conversations saved before owners were kept have
no owner, so only such users see them.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.access.guard import Guard, PermissionDenied, requires
from console.access.permissions import Permission
from console.access.principal import Principal
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
    owner: str | None = None  # None: saved before conversations had owners


def title_for(conversation: Conversation) -> str:
    first = next((turn.content for turn in conversation.turns if turn.role == "user"), "")
    line = " ".join(first.split())
    if not line:
        return "Untitled conversation"
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class ConversationStore:
    def __init__(self, database: AppDatabase, guard: Guard):
        self.database = database
        self.guard = guard

    @requires(Permission.CHAT_USE, "save a conversation")
    def save(
        self,
        principal: Principal,
        conversation: Conversation,
        conversation_id: int | None = None,
        model_name: str | None = None,
        reply_figures: dict | None = None,
    ) -> int:
        """Store the turns not stored yet (and the system prompt); returns the conversation's id. Continuing
        someone else's conversation saves a copy owned by the caller.

        `reply_figures` (prompt_tokens, completion_tokens, tokens_per_second, finish_reason) go with the last
        assistant turn.
        """
        now = now_iso()
        with self.database.write() as db:
            row = None if conversation_id is None else db.execute(
                "select owner from conversations where id = ?", [conversation_id]).fetchone()
            if row is None or row[0] != principal.user:
                conversation_id = db["conversations"].insert(
                    {"title": title_for(conversation), "system_prompt": conversation.system_prompt,
                     "model_name": model_name, "created_at": now, "updated_at": now, "owner": principal.user}
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

    def list(self, principal: Principal | None, limit: int = 200) -> list[ConversationSummary]:
        """The caller's own conversations, the one with the latest message first (message ids grow;
        timestamps only say the second)."""
        self._require_account(principal, "list saved conversations")
        return self._summaries("where c.owner = ?", [principal.user], limit)

    @requires(Permission.CONVERSATIONS_VIEW_ALL, "see every user's conversations")
    def list_all(self, principal: Principal, limit: int = 200) -> list[ConversationSummary]:
        """Everyone's conversations (and those without an owner); audited."""
        summaries = self._summaries("", [], limit)
        self.guard.record(principal, "conversation.list_all", "", shown=len(summaries))
        return summaries

    def open(self, principal: Principal | None, conversation_id: int) -> Conversation:
        with self.database.read() as db:
            head = db.execute("select system_prompt, owner from conversations where id = ?", [conversation_id]).fetchone()
        if head is None:
            raise ConsoleError(f"Conversation {conversation_id} no longer exists.")
        self._require_owner_or_view_all(principal, conversation_id, head[1], "open")
        with self.database.read() as db:
            turns = db.execute(
                "select role, content from messages where conversation_id = ? order by position", [conversation_id]
            ).fetchall()
        return Conversation(system_prompt=head[0] or "", turns=[Turn(role, content) for role, content in turns])

    def delete(self, principal: Principal | None, conversation_id: int) -> None:
        with self.database.read() as db:
            head = db.execute("select owner from conversations where id = ?", [conversation_id]).fetchone()
        if head is None:
            return
        self._require_owner_or_view_all(principal, conversation_id, head[0], "delete")
        with self.database.write() as db:
            db.execute("delete from messages where conversation_id = ?", [conversation_id])
            db.execute("delete from conversations where id = ?", [conversation_id])

    def _summaries(self, where: str, values: list, limit: int) -> list[ConversationSummary]:
        with self.database.read() as db:
            rows = db.execute(
                "select c.id, c.title, c.model_name, c.created_at, c.updated_at, count(m.id), c.owner "
                f"from conversations c left join messages m on m.conversation_id = c.id {where} "
                "group by c.id order by coalesce(max(m.id), 0) desc, c.id desc limit ?",
                values + [limit],
            ).fetchall()
        return [ConversationSummary(*row) for row in rows]

    def _require_account(self, principal: Principal | None, action: str) -> None:
        if self.guard.current_role(principal) is None:
            self.guard.require(principal, Permission.CHAT_USE, action)  # refuses and audits: no account

    def _require_owner_or_view_all(self, principal: Principal | None, conversation_id: int, owner: str | None,
                                   verb: str) -> None:
        self._require_account(principal, f"{verb} a saved conversation")
        if owner is not None and owner == principal.user:
            return
        whose = f"{owner}'s" if owner else "an unowned"
        self.guard.require(principal, Permission.CONVERSATIONS_VIEW_ALL, f"{verb} {whose} conversation {conversation_id}")
        self.guard.record(principal, f"conversation.{verb}", str(conversation_id), owner=owner)
