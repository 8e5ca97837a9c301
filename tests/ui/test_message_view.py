"""A message of the conversation view: streamed text is appended to its document, never re-set, a frame at a time."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine import FinishReason, GenerationResult
from resources import resource_path
from ui.chat.message_view import FenceSplitter, MessageView


@pytest.fixture
def view(qtbot):
    message = MessageView("assistant")
    qtbot.addWidget(message)
    message.resize(500, 200)
    message.show()
    return message


def record_changes(view: MessageView) -> list[tuple[int, int, int, int]]:
    """(position, removed, added, length before) of every change to the view's document."""
    changes = []
    document = view.body.document()
    lengths = [document.characterCount() - 1]

    def changed(position: int, removed: int, added: int) -> None:
        changes.append((position, removed, added, lengths[-1]))
        lengths.append(document.characterCount() - 1)

    document.contentsChange.connect(changed)
    return changes


def test_streamed_pieces_are_appended_at_the_end_not_re_set(view):
    changes = record_changes(view)
    pieces = ["Once", " upon", " a time,\n", "a keeper", " watched the sea."]
    for piece in pieces:
        view.append(piece)
        view.flush()
    assert view.body.toPlainText() == view.text == "".join(pieces)
    assert len(changes) == len(pieces)
    assert all(removed == 0 and position == length_before for position, removed, _added, length_before in changes)


def test_pieces_arriving_within_one_frame_reach_the_document_together(view, qtbot):
    changes = record_changes(view)
    for piece in ["a", "b", "c", "d"]:
        view.append(piece)
    assert view.body.toPlainText() == ""  # nothing drawn per token
    qtbot.waitUntil(lambda: view.body.toPlainText() == "abcd", timeout=1_000)
    assert len(changes) == 1


def test_a_selection_in_the_reply_survives_more_streamed_text(view):
    view.append("The lighthouse stood on the rock.")
    view.flush()
    cursor = view.body.textCursor()
    cursor.setPosition(4)
    cursor.setPosition(14, QTextCursor.MoveMode.KeepAnchor)
    view.body.setTextCursor(cursor)
    view.append(" Waves broke below.")
    view.flush()
    assert view.body.textCursor().selectedText() == "lighthouse"


def test_the_body_grows_with_the_reply_instead_of_scrolling(view, qtbot):
    view.append("one line")
    view.flush()
    short = view.body.height()
    for _ in range(12):
        view.append(" and then the reply went on for another while")
    view.flush()
    qtbot.waitUntil(lambda: view.body.height() > short, timeout=1_000)
    assert view.body.verticalScrollBar().maximum() == 0


def test_the_final_text_is_exactly_the_reply_with_a_fence_split_across_pieces(view):
    pieces = ["Here it is:\n`", "``", "python\nprint('hi')\n``", "`\nDone", " — ok"]
    for piece in pieces:
        view.append(piece)
        view.flush()
    view.flush(final=True)
    assert view.text == view.body.toPlainText() == "".join(pieces)


def test_code_between_fences_is_shown_in_a_fixed_width_font(view):
    view.append("Try:\n```\nprint('hi')\n```\nThat prints hi.")
    view.flush(final=True)
    fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()
    text = view.text

    def families_at(index: int) -> list[str]:
        cursor = QTextCursor(view.body.document())
        cursor.setPosition(index + 1)  # the format of the character before the cursor
        return cursor.charFormat().fontFamilies() or []

    assert fixed in families_at(text.index("print"))
    assert fixed not in families_at(text.index("prints"))


def test_a_saved_message_shows_its_whole_text_at_once(qtbot):
    message = MessageView("user", "What is ``` for?")
    qtbot.addWidget(message)
    assert message.body.toPlainText() == message.text == "What is ``` for?"


def test_fence_splitter_holds_back_backticks_that_may_open_a_fence():
    splitter = FenceSplitter()
    assert splitter.feed("code: `") == [("code: ", False)]
    assert splitter.feed("``x") == [("```x", True)]
    assert splitter.feed("```y") == [("```", True), ("y", False)]
    assert splitter.feed("``") == []
    assert splitter.finish() == [("``", False)]


class PaintCounter(QObject):
    def __init__(self, widget):
        super().__init__()
        self.count = 0
        widget.installEventFilter(self)

    def eventFilter(self, _watched, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


@pytest.fixture
def styled_view(qtbot):
    """A message in a transcript-like parent that carries the app's style sheet (its colours, its frames)."""
    transcript = QWidget()
    transcript.setStyleSheet(resource_path("style.qss").read_text(encoding="utf-8"))
    message = MessageView("assistant", parent=transcript)
    QVBoxLayout(transcript).addWidget(message)
    qtbot.addWidget(transcript)
    transcript.resize(500, 300)
    transcript.show()
    qtbot.waitExposed(transcript)
    yield message  # the fixture holds the transcript alive (qtbot keeps only a weak reference)


def test_a_streamed_token_repaints_the_text_not_the_message_frame_behind_it(styled_view, qtbot):
    styled_view.append("The first piece")
    styled_view.flush()
    qtbot.wait(50)
    frame, text = PaintCounter(styled_view), PaintCounter(styled_view.body.viewport())
    for piece in [" and", " the", " next", " ones"]:
        styled_view.append(piece)
        styled_view.flush()
        styled_view.body.viewport().repaint()  # what the next frame draws, now
    assert text.count >= 4
    assert frame.count == 0  # the rounded frame was painted again under every token before


def test_the_body_paints_its_message_colour_and_changes_it_with_the_role(styled_view, qtbot):
    styled_view.append("Some text")
    styled_view.flush()
    background = styled_view.body.document().rootFrame().frameFormat().background().color()
    assert background.name() == "#ffffff"
    styled_view.show_result(GenerationResult(request_id=1, text="", finish_reason=FinishReason.ERROR,
                                             error="The engine stopped."))
    assert styled_view.body.toPlainText() == "The engine stopped."
    background = styled_view.body.document().rootFrame().frameFormat().background().color()
    assert background.name() == "#fdecea"  # the error colour of style.qss, not white under a pink frame
    image = styled_view.body.grab().toImage()
    assert image.pixelColor(image.width() - 2, image.height() // 2).name() == "#fdecea"


def test_a_fast_stream_is_drawn_at_most_twenty_times_a_second(view, qtbot):
    """Its UI cost is bounded by the refresh rate, not the engine's speed: 40 pieces 10 ms apart (100 tok/s)
    are drawn in at most one change per 50 ms (at the screen's 60 Hz it was one change per 16 ms, 24 here)."""
    changes = record_changes(view)
    started = time.monotonic()
    for index in range(40):
        view.append(f" w{index}")
        qtbot.wait(10)
    elapsed = time.monotonic() - started
    view.flush(final=True)
    assert view.body.toPlainText() == "".join(f" w{index}" for index in range(40))
    assert len(changes) <= elapsed / 0.050 + 2
