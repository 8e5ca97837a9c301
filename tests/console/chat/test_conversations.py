"""Saved conversations: the store keeps every finished exchange, and the chat panel saves and reopens them."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from console.chat.conversation import Conversation
from console.chat.conversations_store import ConversationStore
from console.access.audit_log import AuditLog
from console.access.control import AccessControl
from console.access.guard import Guard
from console.storage.database import open_database


@pytest.fixture
def signed_in(tmp_path):
    """A store on a fresh database and the principal of its first administrator."""
    database = open_database(tmp_path / "registry.db")
    audit = AuditLog(database)
    owner = AccessControl(database, audit).create_first_admin("owner", "a-long-pass-phrase")
    yield ConversationStore(database, Guard(database, audit)), owner
    database.close()


@pytest.fixture
def store(signed_in):
    return signed_in[0]


@pytest.fixture
def owner(signed_in):
    return signed_in[1]


def exchange(conversation: Conversation, question: str, answer: str) -> None:
    conversation.add_user(question)
    conversation.add_assistant(answer)


def test_a_saved_conversation_reopens_with_its_prompt_and_turns(store, owner):
    conversation = Conversation(system_prompt="Answer in French.")
    exchange(conversation, "What is the capital of Italy?", "Rome.")
    conversation_id = store.save(owner, conversation, model_name="tiny:v1", reply_figures={"completion_tokens": 2})
    reopened = store.open(owner, conversation_id)
    assert reopened.system_prompt == "Answer in French."
    assert [(t.role, t.content) for t in reopened.turns] == [("user", "What is the capital of Italy?"), ("assistant", "Rome.")]
    [summary] = store.list(owner)
    assert (summary.id, summary.title, summary.model_name, summary.message_count) == (
        conversation_id, "What is the capital of Italy?", "tiny:v1", 2)


def test_saving_again_appends_only_the_new_turns(store, owner):
    conversation = Conversation()
    exchange(conversation, "one", "1")
    conversation_id = store.save(owner, conversation)
    exchange(conversation, "two", "2")
    assert store.save(owner, conversation, conversation_id) == conversation_id
    assert [t.content for t in store.open(owner, conversation_id).turns] == ["one", "1", "two", "2"]
    with store.database.read() as db:
        assert db.execute("select position from messages order by position").fetchall() == [(0,), (1,), (2,), (3,)]


def test_the_most_recent_conversation_is_listed_first_with_a_short_title(store, owner):
    first, second = Conversation(), Conversation()
    exchange(first, "first question", "a")
    exchange(second, "a very long question " * 10, "b")
    store.save(owner, first)
    second_id = store.save(owner, second)
    exchange(first, "follow-up", "c")
    store.save(owner, first, 1)  # a new exchange makes the first conversation the most recent
    titles = [summary.title for summary in store.list(owner)]
    assert titles[0] == "first question"
    assert titles[1].endswith("…") and len(titles[1]) <= 60
    store.delete(owner, second_id)
    assert [summary.title for summary in store.list(owner)] == ["first question"]


@pytest.fixture
def window(tiny_window):
    return tiny_window


def ask(qtbot, panel, text: str) -> None:
    panel.input.setPlainText(text)
    with qtbot.waitSignal(panel.adapter.generation_finished, timeout=60_000):
        qtbot.keyClick(panel.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def test_the_chat_panel_saves_each_reply_and_reopens_the_conversation(window, qtbot):
    panel = window.chat_panel
    panel.controls.max_new_tokens.setValue(5)
    panel.controls.temperature.setValue(0.0)  # greedy: a sampled empty reply would not be saved
    ask(qtbot, panel, "hello world")
    saved_id = panel.conversation_id
    assert saved_id is not None
    assert panel.history_combo.currentData() == saved_id
    assert panel.history_combo.currentText().startswith("hello world · ")
    reply = panel.message_views()[1].text

    panel.new_chat_button.click()
    assert panel.message_views() == [] and panel.conversation_id is None

    panel.history_combo.setCurrentIndex(panel.history_combo.findData(saved_id))
    panel.history_combo.activated.emit(panel.history_combo.currentIndex())
    qtbot.waitUntil(lambda: len(panel.message_views()) == 2, timeout=5_000)
    assert [view.text for view in panel.message_views()] == ["hello world", reply]
    assert panel.conversation_id == saved_id

    ask(qtbot, panel, "and again")
    turns = window.adapter.core.conversations.open(window.session.principal, saved_id).turns
    assert [t.content for t in turns[:3]] == ["hello world", reply, "and again"]
    assert len(turns) == 4
