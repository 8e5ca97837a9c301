"""One message in the conversation view: who said it, the text (streamed in), and the reply's figures."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from engine import FinishReason, GenerationResult

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "error": "Error"}


def format_figures(result: GenerationResult) -> str:
    if result.cached:
        return f"cache hit · {result.completion_tokens} tokens · answered in {result.total_s * 1000:.0f} ms · stop: {result.finish_reason.label}"
    parts = [f"{result.completion_tokens} tokens"]
    parts.append(f"{result.tokens_per_second:.1f} tok/s" if result.tokens_per_second else "– tok/s")
    if result.time_to_first_token_s is not None:
        parts.append(f"first token {result.time_to_first_token_s * 1000:.0f} ms")
    parts.append(f"prompt {result.prompt_tokens} tokens")
    parts.append(f"stop: {result.finish_reason.label}")
    return " · ".join(parts)


class MessageView(QFrame):
    def __init__(self, role: str, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.setObjectName("message")
        self.setProperty("role", role)
        self.title = QLabel(ROLE_TITLES.get(role, role))
        self.title.setObjectName("messageTitle")
        self.body = QLabel(text)
        self.body.setObjectName("messageBody")
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.figures = QLabel("")
        self.figures.setObjectName("messageFigures")
        self.figures.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        layout.addWidget(self.figures)

    @property
    def text(self) -> str:
        return self.body.text()

    def append(self, piece: str) -> None:
        self.body.setText(self.body.text() + piece)

    def show_result(self, result: GenerationResult) -> None:
        if result.finish_reason is FinishReason.ERROR:
            self.setProperty("role", "error")
            self.title.setText("Error")
            self.body.setText(result.error or "Generation failed.")
            self.style().unpolish(self)
            self.style().polish(self)
        elif not self.body.text():
            self.body.setText("(no text)" if result.finish_reason is not FinishReason.CANCELLED else "(stopped before the first token)")
        if result.finish_reason is not FinishReason.ERROR:
            self.figures.setText(format_figures(result))
            self.figures.setVisible(True)
