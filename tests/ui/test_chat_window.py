"""The real main window driven through pytest-qt: load, chat, stop, errors, closing while generating."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine import FinishReason


@pytest.fixture
def window(admin_window):
    return admin_window


@pytest.fixture
def loaded_window(window, qtbot, tiny_model_dir):
    window.model_bar.add_model_path(str(tiny_model_dir))
    with qtbot.waitSignal(window.adapter.load_finished, timeout=60_000):
        qtbot.mouseClick(window.model_bar.load_button, Qt.MouseButton.LeftButton)
    return window


def type_message(qtbot, window, text: str) -> None:
    window.chat_panel.input.setFocus()
    qtbot.keyClicks(window.chat_panel.input, text)


def test_window_title_and_empty_state(window):
    assert window.windowTitle() == "LLM Console"
    assert "No model loaded" in window.model_bar.status_label.text()
    assert window.chat_panel.empty_hint.isVisible()


def test_loading_shows_the_model_and_its_figures(loaded_window):
    status = loaded_window.model_bar.status_label.text()
    assert "tiny-llama" in status and "cpu" in status and "context 2,048" in status
    info = loaded_window.adapter.model_info
    assert f"· {info.precision} (auto) ·" in status  # what `auto` chose on the line, why in the tooltip
    assert info.precision_reason and info.precision_reason not in status  # a sentence: it wrapped the line
    assert loaded_window.model_bar.status_label.toolTip() == f"Precision auto chose {info.precision}: {info.precision_reason}"
    assert loaded_window.model_bar.unload_button.isEnabled()
    assert not loaded_window.model_bar.progress.isVisible()


def test_send_streams_a_reply_with_its_figures(loaded_window, qtbot):
    panel = loaded_window.chat_panel
    panel.controls.max_new_tokens.setValue(30)
    panel.controls.temperature.setValue(0.0)  # greedy: a sampled end-of-text could end the reply early
    type_message(qtbot, loaded_window, "hello world")
    pieces = []
    panel.adapter.text_received.connect(lambda _id, piece: pieces.append(piece))
    with qtbot.waitSignal(panel.adapter.generation_finished, timeout=60_000) as finished:
        qtbot.keyClick(panel.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    result = finished.args[1]
    user_view, reply_view = panel.message_views()
    assert user_view.text == "hello world"
    assert len(pieces) > 1
    assert reply_view.text == result.text == "".join(pieces)
    assert reply_view.body.toPlainText() == result.text
    assert reply_view.figures.isVisible()
    figures = reply_view.figures.text()
    assert "30 tokens" in figures and "tok/s" in figures and "first token" in figures and "max tokens" in figures
    assert panel.input.toPlainText() == ""
    assert [t.role for t in panel.conversation.turns] == ["user", "assistant"]


def test_stop_ends_the_reply_and_says_cancelled(loaded_window, qtbot):
    panel = loaded_window.chat_panel
    panel.controls.max_new_tokens.setValue(1900)
    panel.controls.temperature.setValue(0.0)
    type_message(qtbot, loaded_window, "tell me everything")
    with qtbot.waitSignal(panel.adapter.text_received, timeout=60_000):
        panel.send_button.click()
    assert panel.stop_button.isEnabled()
    with qtbot.waitSignal(panel.adapter.generation_finished, timeout=60_000) as finished:
        qtbot.keyClick(panel.input, Qt.Key.Key_Escape)
    assert finished.args[1].finish_reason is FinishReason.CANCELLED
    assert "stop: cancelled" in panel.message_views()[-1].figures.text()
    assert panel.send_button.isEnabled() and not panel.stop_button.isEnabled()


def test_empty_message_shows_a_hint_and_sends_nothing(loaded_window, qtbot):
    panel = loaded_window.chat_panel
    type_message(qtbot, loaded_window, "   ")
    panel.send_button.click()
    assert panel.notice.text() == "⚠ Type a message first."
    assert panel.message_views() == []


def test_send_without_a_model_keeps_the_text_and_says_load_one(window, qtbot):
    panel = window.chat_panel
    type_message(qtbot, window, "are you there?")
    panel.send_button.click()
    assert "No model is loaded" in panel.notice.text()
    assert panel.input.toPlainText() == "are you there?"
    assert panel.conversation.turns == []


def test_corrupt_model_file_shows_the_error_and_the_app_keeps_working(window, qtbot, tmp_path, tiny_model_dir):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"garbage" * 100)
    window.model_bar.add_model_path(str(broken))
    with qtbot.waitSignal(window.adapter.load_failed, timeout=60_000):
        window.model_bar.load_button.click()
    assert "not a GGUF file" in window.model_bar.status_label.text()
    assert window.model_bar.load_button.isEnabled()
    window.model_bar.add_model_path(str(tiny_model_dir))
    with qtbot.waitSignal(window.adapter.load_finished, timeout=60_000):
        window.model_bar.load_button.click()


def test_load_button_is_disabled_while_loading(window, qtbot, tiny_model_dir):
    window.model_bar.add_model_path(str(tiny_model_dir))
    with qtbot.waitSignal(window.adapter.load_finished, timeout=60_000):
        window.model_bar.load_button.click()
        assert not window.model_bar.load_button.isEnabled()
    assert window.model_bar.load_button.isEnabled()


def test_closing_while_generating_stops_cleanly(loaded_window, qtbot):
    panel = loaded_window.chat_panel
    panel.controls.max_new_tokens.setValue(1900)
    type_message(qtbot, loaded_window, "a long story")
    results = []
    panel.adapter.generation_finished.connect(lambda _id, result: results.append(result))
    with qtbot.waitSignal(panel.adapter.text_received, timeout=60_000):
        panel.send_button.click()
    loaded_window.close()
    loop_thread = loaded_window.adapter.core._engine._loop._thread
    assert not loop_thread.is_alive()
    qtbot.waitUntil(lambda: len(results) == 1, timeout=10_000)
    assert results[0].finish_reason in (FinishReason.CANCELLED, FinishReason.ERROR)


def test_a_streamed_reply_only_ever_appends_to_its_document(loaded_window, qtbot):
    panel = loaded_window.chat_panel
    panel.controls.max_new_tokens.setValue(60)
    panel.controls.temperature.setValue(0.0)
    type_message(qtbot, loaded_window, "tell me a story")
    panel.send()
    document = panel.message_views()[-1].body.document()
    changes = []
    document.contentsChange.connect(lambda position, removed, added: changes.append((position, removed, added)))
    pieces = []
    panel.adapter.text_received.connect(lambda _id, piece: pieces.append(piece))
    with qtbot.waitSignal(panel.adapter.generation_finished, timeout=60_000) as finished:
        pass
    assert document.toPlainText() == finished.args[1].text
    assert changes and all(removed == 0 for _position, removed, _added in changes)
    assert sum(added for _position, _removed, added in changes) == len(finished.args[1].text)
    assert len(changes) <= len(pieces)


def tall_question() -> str:
    """Short in tokens (the tiny model's context is 2,048), tall on screen: the transcript can scroll."""
    return ".\n" * 30 + "tell me everything"  # and greedy, the tiny model goes on past 300 tokens


def test_the_transcript_follows_a_streaming_reply_to_its_end(loaded_window, qtbot):
    panel = loaded_window.chat_panel
    panel.controls.max_new_tokens.setValue(80)
    panel.controls.temperature.setValue(0.0)
    panel.input.setPlainText(tall_question())
    with qtbot.waitSignal(panel.adapter.generation_finished, timeout=60_000) as finished:
        panel.send()
    assert finished.args[1].text
    bar = panel.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=5_000)


def test_scrolling_up_while_a_reply_streams_keeps_the_reader_where_they_are(loaded_window, qtbot):
    panel = loaded_window.chat_panel
    panel.controls.max_new_tokens.setValue(300)
    panel.controls.temperature.setValue(0.0)
    panel.input.setPlainText(tall_question())
    bar = panel.scroll.verticalScrollBar()
    with qtbot.waitSignal(panel.adapter.text_received, timeout=60_000):
        panel.send()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5_000)
    bar.setValue(0)  # the reader goes back to the top of the question
    height_when_scrolled = bar.maximum()
    with qtbot.waitSignal(panel.adapter.generation_finished, timeout=60_000):
        pass
    QApplication.processEvents()  # the last frame of text and the layout it posts
    QApplication.processEvents()
    assert bar.maximum() > height_when_scrolled
    assert bar.value() == 0
