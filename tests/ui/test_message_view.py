"""A message of the conversation view: streamed text is appended to its document, never re-set, a frame at a time."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QFontDatabase, QTextCursor

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
