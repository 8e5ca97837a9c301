"""A chat conversation: a system prompt and the turns so far, turned into the messages a request needs."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    content: str


@dataclass
class Conversation:
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    turns: list[Turn] = field(default_factory=list)

    def add_user(self, text: str) -> None:
        self.turns.append(Turn("user", text))

    def add_assistant(self, text: str) -> None:
        self.turns.append(Turn("assistant", text))

    def drop_last_user_turn(self) -> None:
        """Undo a user turn whose answer failed, so the next attempt does not repeat it."""
        if self.turns and self.turns[-1].role == "user":
            self.turns.pop()

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt.strip() else []
        return messages + [{"role": turn.role, "content": turn.content} for turn in self.turns]

    def clear(self) -> None:
        self.turns.clear()
