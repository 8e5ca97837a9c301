"""One message in the conversation view: who said it, the text (streamed in), and the reply's figures.

A streamed reply is appended to the end of a text document, at most 20 times a second (once per frame on a
screen slower than that): re-setting a label with the whole reply on every token costs more with each token
and held the UI thread (and with it Python's lock, which the engine's thread needs between operations) for
most of a long reply. An append costs the UI thread about 2 ms (layout and paint of the paragraph it ends), so
drawing one per token made the window's cost grow with the engine's speed. At 20 Hz, with the body's opaque
background (below) and the idle lock's window-level filter, fed at 26 tokens a second
(scripts/measure_window_append.py), the UI thread went from 8.3 % to 3.3 % of a core, and at 60 tokens a second
from 10.7 % to 5.5 % (what is left grows with the token rate: each token still runs a slot); text appearing in
steps of 50 ms still reads as a smooth stream.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFontDatabase, QGuiApplication, QTextCharFormat, QTextCursor, QTextOption
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QTextEdit, QVBoxLayout, QWidget

from engine import FinishReason, GenerationResult

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "error": "Error"}
FENCE = "```"
CODE_BACKGROUND = "#eef1f5"
FALLBACK_REFRESH_HZ = 60.0
STREAM_REFRESH_HZ = 20.0  # the most a streamed reply is redrawn per second


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


def frame_interval_ms(widget: QWidget) -> int:
    """One frame of the screen the widget is on (of the primary screen before it is shown)."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    rate = screen.refreshRate() if screen is not None else 0.0
    return max(1, round(1000 / (rate if rate > 1 else FALLBACK_REFRESH_HZ)))


def stream_interval_ms(widget: QWidget) -> int:
    """How long streamed text waits to be drawn: 1/20 s, or one frame of a screen slower than 20 Hz."""
    return max(frame_interval_ms(widget), round(1000 / STREAM_REFRESH_HZ))


class FenceSplitter:
    """Splits streamed text into runs outside and inside ``` fences (code is shown in a fixed-width font).

    The fences themselves belong to the code run. Backticks at the end of a piece that may be the start of a
    fence split across tokens are held back until the next piece (or `finish`)."""

    def __init__(self) -> None:
        self.in_code = False
        self._held = ""

    def feed(self, text: str) -> list[tuple[str, bool]]:
        text = self._held + text
        trailing = len(text) - len(text.rstrip("`"))
        keep = trailing % len(FENCE)
        self._held = text[len(text) - keep:] if keep else ""
        return self._split(text[: len(text) - keep])

    def finish(self) -> list[tuple[str, bool]]:
        held, self._held = self._held, ""
        return self._split(held)

    def _split(self, text: str) -> list[tuple[str, bool]]:
        runs: list[tuple[str, bool]] = []
        for index, part in enumerate(text.split(FENCE)):
            if index > 0:  # a fence, opening or closing: shown as code either way
                _add_run(runs, FENCE, True)
                self.in_code = not self.in_code
            if part:
                _add_run(runs, part, self.in_code)
        return runs


def _add_run(runs: list[tuple[str, bool]], text: str, code: bool) -> None:
    if runs and runs[-1][1] == code:
        runs[-1] = (runs[-1][0] + text, code)
    else:
        runs.append((text, code))


class MessageBody(QTextEdit):
    """Read-only, selectable text as tall as its content (the transcript scrolls, not the message)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messageBody")
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)  # an undo step per appended frame would only grow
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                     | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(True)  # in its message's colour, from the style sheet
        self.document().setDocumentMargin(0)
        self._end = QTextCursor(self.document())  # appends go here; the reader's cursor and selection stay
        self._prose = QTextCharFormat()
        self._code = QTextCharFormat()
        self._code.setFontFamilies([QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()])
        self._code.setBackground(QColor(CODE_BACKGROUND))
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height(self.document().size())

    def paint_opaque(self) -> None:
        """Let the document paint the background (the style sheet's colour, read once the body is polished in
        its message) and tell Qt the text covers its widget: a streamed token's repaint then draws the text
        alone, not the message's rounded frame behind it too (about a sixth of a token's UI time)."""
        viewport = self.viewport()
        root = self.document().rootFrame()
        frame_format = root.frameFormat()
        frame_format.setBackground(viewport.palette().color(viewport.backgroundRole()))
        root.setFrameFormat(frame_format)
        viewport.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    def paints_opaque(self) -> bool:
        return self.viewport().testAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def append_runs(self, runs: list[tuple[str, bool]]) -> None:
        """Insert text at the end of the document; each run is prose (False) or code (True)."""
        if not self._end.atEnd():  # moving there lays the last block out again: skip it when already there
            self._end.movePosition(QTextCursor.MoveOperation.End)
        for text, code in runs:
            self._end.insertText(text, self._code if code else self._prose)

    def replace_text(self, text: str) -> None:
        self.document().clear()
        self.append_runs([(text, False)])

    def _fit_height(self, size) -> None:
        margins = self.contentsMargins()
        height = math.ceil(size.height()) + margins.top() + margins.bottom()
        if height != self.maximumHeight():
            self.setFixedHeight(height)


class MessageView(QFrame):
    def __init__(self, role: str, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.setObjectName("message")
        self.setProperty("role", role)
        self.title = QLabel(ROLE_TITLES.get(role, role))
        self.title.setObjectName("messageTitle")
        self.body = MessageBody()
        self.figures = QLabel("")
        self.figures.setObjectName("messageFigures")
        self.figures.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        layout.addWidget(self.figures)
        self._pieces: list[str] = []  # everything received, exactly as it came
        self._pending: list[str] = []  # received, not yet on screen
        self._fences = FenceSplitter()
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(stream_interval_ms(self))
        self._flush_timer.timeout.connect(self.flush)
        if text:
            self.append(text)
            self.flush(final=True)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not self.body.paints_opaque():  # polished in place now: the style sheet's colours for its role are known
            self.body.paint_opaque()

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def append(self, piece: str) -> None:
        """Add streamed text; it reaches the screen within 1/20 s, with whatever else arrived by then."""
        if not piece:
            return
        self._pieces.append(piece)
        self._pending.append(piece)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def flush(self, final: bool = False) -> None:
        """Put the text received so far on screen (`final`: also backticks held back as a possible fence)."""
        self._flush_timer.stop()
        runs = self._fences.feed("".join(self._pending)) if self._pending else []
        self._pending.clear()
        if final:
            runs += self._fences.finish()
        if runs:
            self.body.append_runs(runs)

    def show_result(self, result: GenerationResult) -> None:
        self.flush(final=True)
        if result.finish_reason is FinishReason.ERROR:
            self.setProperty("role", "error")
            self.title.setText("Error")
            self._replace(result.error or "Generation failed.")
            for widget in (self, self.body):  # the role selects both colours in the style sheet
                widget.style().unpolish(widget)
                widget.style().polish(widget)
            if self.body.paints_opaque():
                self.body.paint_opaque()
        elif not self.text:
            self._replace("(no text)" if result.finish_reason is not FinishReason.CANCELLED else "(stopped before the first token)")
        if result.finish_reason is not FinishReason.ERROR:
            self.figures.setText(format_figures(result))
            self.figures.setVisible(True)

    def _replace(self, text: str) -> None:
        self._pieces = [text]
        self._fences = FenceSplitter()
        self.body.replace_text(text)
