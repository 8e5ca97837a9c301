"""The chat panel: conversation view with streamed replies, input box, send/stop, and sampling controls.

Every finished exchange is saved in the app's database (`console/conversations_store.py`); the "Saved"
list above the transcript reopens any conversation.
"""

from __future__ import annotations

from typing import Callable, Collection

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.chat.conversation import Conversation
from console.errors import ConsoleError
from console.storage.timestamps import local_time
from engine import EngineError, FinishReason, GenerationResult
from ui.adapters.engine_adapter import EngineAdapter
from ui.chat.message_view import MessageView
from ui.chat.sampling_controls import SamplingControls

INPUT_HINT = "Message the model…  (Ctrl+Enter to send, Esc to stop)"
FOLLOW_SLACK_PX = 8  # this close to the end still counts as reading the end


class ChatPanel(QWidget):
    def __init__(self, adapter: EngineAdapter, parent: QWidget | None = None):
        super().__init__(parent)
        self.adapter = adapter
        self.conversation = Conversation()
        self.store = adapter.core.conversations
        self.conversation_id: int | None = None  # once saved
        self.active_request: int | None = None
        self._reply_view: MessageView | None = None
        self._history_user: str | None = adapter.session.user  # whose saved conversations the list shows

        chat_column = QWidget()
        chat_layout = QVBoxLayout(chat_column)
        chat_layout.setContentsMargins(0, 0, 0, 0)
        chat_layout.addLayout(self._build_history_row())
        chat_layout.addWidget(self._build_transcript(), 1)
        self.notice = QLabel("")
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        chat_layout.addWidget(self.notice)
        chat_layout.addLayout(self._build_input_row())
        self.controls = SamplingControls()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(chat_column)
        splitter.addWidget(self.controls)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([760, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 12)
        layout.addWidget(splitter)
        self._connect(adapter)
        self.refresh_history()

    def _build_history_row(self) -> QHBoxLayout:
        self.history_combo = QComboBox()
        self.history_combo.setToolTip("Reopen a saved conversation; every finished reply is saved")
        history_row = QHBoxLayout()
        history_row.addWidget(QLabel("Saved"))
        history_row.addWidget(self.history_combo, 1)
        return history_row

    def _build_transcript(self) -> QScrollArea:
        """The messages, in a scroll area that follows a streaming reply while the reader is at its end."""
        self.empty_hint = QLabel("No messages yet. Load a model, type a question below and press Ctrl+Enter.")
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.messages_box = QWidget()
        self.messages_layout = QVBoxLayout(self.messages_box)
        self.messages_layout.setContentsMargins(12, 12, 12, 12)
        self.messages_layout.setSpacing(10)
        self.messages_layout.addWidget(self.empty_hint)
        self.messages_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.messages_box)
        self.scroll.setObjectName("transcript")
        self._following = True  # the transcript sticks to its end until the reader scrolls up
        self.scroll.verticalScrollBar().rangeChanged.connect(self._follow_bottom)
        self.scroll.verticalScrollBar().valueChanged.connect(self._note_scroll)
        return self.scroll

    def _build_input_row(self) -> QHBoxLayout:
        self.input = QPlainTextEdit()
        self.input.setObjectName("chatInput")
        self.input.setPlaceholderText(INPUT_HINT)
        self.input.setFixedHeight(80)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primaryButton")
        self.send_button.setToolTip("Send (Ctrl+Enter)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the reply (Esc)")
        self.stop_button.setEnabled(False)
        self.new_chat_button = QPushButton("New chat")
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.new_chat_button)
        buttons.addStretch(1)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addLayout(buttons)
        return input_row

    def _connect(self, adapter: EngineAdapter) -> None:
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        self.new_chat_button.clicked.connect(self.new_chat)
        self.history_combo.activated.connect(self._open_chosen)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.send)
        QShortcut(QKeySequence("Ctrl+Enter"), self, activated=self.send)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.stop)
        adapter.text_received.connect(self._on_text)
        adapter.generation_finished.connect(self._on_finished)

    # --- who is signed in, and the stored defaults ---------------------------------------------------------
    def apply_session(self) -> None:
        """After a sign-in, a switch of user or a lock: another user gets a new chat and their own saved
        conversations; Send and the input follow the `chat:use` permission (the core checks again)."""
        session = self.adapter.session
        if session.principal is not None and session.user != self._history_user:  # first: a new chat re-enables Send
            if self._history_user is not None:
                self.new_chat()
            self._history_user = session.user
            self.refresh_history()
        may_chat = session.can(Permission.CHAT_USE)
        self.send_button.setEnabled(may_chat)
        self.input.setReadOnly(not may_chat)
        self.input.setPlaceholderText(INPUT_HINT if may_chat else "Your role may not chat with the model.")

    def apply_settings(self, setting: Callable[[str], object], changed: Collection[str] | None = None) -> None:
        """The stored reply length (at start, or when a saved change includes it)."""
        if changed is None or "engine.max_new_tokens" in changed:
            self.controls.max_new_tokens.setValue(setting("engine.max_new_tokens"))

    # --- actions -----------------------------------------------------------------------------------------
    def send(self) -> None:
        if self.active_request is not None:
            return
        text = self.input.toPlainText().strip()
        if not text:
            self.show_notice("Type a message first.")
            return
        self.conversation.system_prompt = self.controls.system_prompt.toPlainText()
        self.conversation.add_user(text)
        try:
            params = self.controls.params()
            request_id = self.adapter.chat(self.conversation.messages(), params)
        except (EngineError, ConsoleError) as error:
            self.conversation.drop_last_user_turn()
            self.show_notice(str(error))  # the typed text stays in the box
            return
        self.show_notice("")
        self.input.clear()
        self._following = True
        self._add_message("user", text)
        self._reply_view = self._add_message("assistant", "")
        self.active_request = request_id
        self._set_generating(True)

    def stop(self) -> None:
        if self.active_request is not None:
            self.adapter.cancel(self.active_request)

    def new_chat(self) -> None:
        self._abandon_reply()
        self.conversation = Conversation(system_prompt=self.controls.system_prompt.toPlainText())
        self.conversation_id = None
        self._clear_view()
        self.history_combo.setCurrentIndex(0)
        self.show_notice("")

    def open_conversation(self, conversation_id: int) -> None:
        """Show a saved conversation; the next message continues it."""
        self._abandon_reply()
        try:
            conversation = self.store.open(self.adapter.session.principal, conversation_id)
        except ConsoleError as error:
            self.show_notice(str(error))
            return
        self._clear_view()
        self.conversation = conversation
        self.conversation_id = conversation_id
        self.controls.system_prompt.setPlainText(conversation.system_prompt)
        for turn in conversation.turns:
            self._add_message(turn.role, turn.content)
        self.show_notice("")
        self.refresh_history()

    def refresh_history(self) -> None:
        try:
            saved = self.store.list(self.adapter.session.principal)
        except ConsoleError as error:
            self.show_notice(f"Saved conversations cannot be read: {error}")
            saved = []
        self.history_combo.blockSignals(True)
        self.history_combo.clear()
        self.history_combo.addItem("New conversation" if saved else "No saved conversations yet", None)
        for summary in saved:
            self.history_combo.addItem(f"{summary.title} · {local_time(summary.updated_at)}", summary.id)
        index = self.history_combo.findData(self.conversation_id) if self.conversation_id is not None else 0
        self.history_combo.setCurrentIndex(max(index, 0))
        self.history_combo.blockSignals(False)

    def _open_chosen(self, index: int) -> None:
        conversation_id = self.history_combo.itemData(index)
        if conversation_id is None:
            if self.conversation_id is not None:
                self.new_chat()
        elif conversation_id != self.conversation_id:
            self.open_conversation(conversation_id)

    def _abandon_reply(self) -> None:
        """Cancel a running reply and forget it: its view is about to go, and it belongs to the old conversation."""
        self.stop()
        self.active_request = None
        self._reply_view = None
        self._set_generating(False)

    def _clear_view(self) -> None:
        while self.messages_layout.count() > 2:  # keep the empty hint and the stretch
            item = self.messages_layout.takeAt(1)
            item.widget().deleteLater()
        self.empty_hint.setVisible(True)
        self._following = True

    def _save(self, result: GenerationResult) -> None:
        info = self.adapter.model_info
        figures = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                   "tokens_per_second": result.tokens_per_second, "finish_reason": result.finish_reason.value}
        try:
            self.conversation_id = self.store.save(
                self.adapter.session.principal, self.conversation, self.conversation_id, info.name if info else None, figures
            )
        except ConsoleError as error:  # the reply stays on screen; only the saved copy is missing
            self.show_notice(f"This conversation could not be saved: {error}")
            return
        self.refresh_history()

    def show_notice(self, message: str) -> None:
        self.notice.setText(f"⚠ {message}" if message else "")
        self.notice.setVisible(bool(message))

    def message_views(self) -> list[MessageView]:
        views = []
        for index in range(self.messages_layout.count()):
            widget = self.messages_layout.itemAt(index).widget()
            if isinstance(widget, MessageView):
                views.append(widget)
        return views

    # --- engine events -----------------------------------------------------------------------------------
    def _on_text(self, request_id: int, piece: str) -> None:
        if request_id == self.active_request and self._reply_view is not None:
            self._reply_view.append(piece)

    def _on_finished(self, request_id: int, result: GenerationResult) -> None:
        if request_id != self.active_request or self._reply_view is None:
            return
        self._reply_view.show_result(result)
        if result.finish_reason is FinishReason.ERROR:
            self.conversation.drop_last_user_turn()
        elif result.text:
            self.conversation.add_assistant(result.text)
            self._save(result)
        else:
            self.conversation.drop_last_user_turn()
        self.active_request = None
        self._reply_view = None
        self._set_generating(False)
        self.input.setFocus()

    # --- helpers -----------------------------------------------------------------------------------------
    def _add_message(self, role: str, text: str) -> MessageView:
        self.empty_hint.setVisible(False)
        view = MessageView(role, text)
        self.messages_layout.insertWidget(self.messages_layout.count() - 1, view)
        return view

    def _set_generating(self, generating: bool) -> None:
        self.send_button.setEnabled(not generating)
        self.stop_button.setEnabled(generating)

    def _note_scroll(self, value: int) -> None:
        self._following = value >= self.scroll.verticalScrollBar().maximum() - FOLLOW_SLACK_PX

    def _follow_bottom(self, _minimum: int, maximum: int) -> None:
        """The transcript grew (a line of the reply, a new message): stay at the end unless the reader left it."""
        if self._following:
            self.scroll.verticalScrollBar().setValue(maximum)
