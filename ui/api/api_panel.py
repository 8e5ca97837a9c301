"""The API tab: switch the local API on and off, where it listens (address, port, TLS files, keys required),
the base URL with copyable curl and Python examples, the keys (a new secret is shown once) and, live, each
key's usage today and the requests in flight. A thin skin over `ApiAdapter`; the service checks every action."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.api.config import ApiConfig, is_loopback
from console.errors import ConsoleError
from ui.adapters.api_adapter import ApiAdapter
from ui.widgets.form_dialog import FormDialog
from ui.widgets.record_table import fill, record_table
from ui.widgets.spin_boxes import double_spin_box, int_spin_box

HOSTS = ("127.0.0.1", "::1", "0.0.0.0")
KEY_COLUMNS = ("ID", "Label", "User", "Key", "State", "Expires", "Last used", "Requests", "Tokens in / out",
               "Errors", "In flight")
REFRESH_MS = 1000


def curl_example(base_url: str, model: str) -> str:
    return (f"curl {base_url}/chat/completions \\\n"
            '  -H "Authorization: Bearer $LLM_CONSOLE_API_KEY" \\\n'
            '  -H "Content-Type: application/json" \\\n'
            f"  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'")


def python_example(base_url: str, model: str) -> str:
    return ("import os\nfrom openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{base_url}", api_key=os.environ["LLM_CONSOLE_API_KEY"])\n'
            f'reply = client.chat.completions.create(model="{model}",\n'
            '                                       messages=[{"role": "user", "content": "Hello"}])\n'
            "print(reply.choices[0].message.content)")


def _code_box(lines: int) -> QPlainTextEdit:
    """Read-only code, unwrapped (a wrapped shell line would not paste as one), tall enough for `lines`."""
    box = QPlainTextEdit()
    box.setReadOnly(True)
    box.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    box.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    box.setFixedHeight(box.fontMetrics().lineSpacing() * lines + 2 * box.frameWidth() + 12
                       + box.horizontalScrollBar().sizeHint().height())
    return box


def _copy_button(source) -> QPushButton:
    button = QPushButton("Copy")
    button.clicked.connect(lambda: QGuiApplication.clipboard().setText(source()))
    return button


class CreateKeyDialog(FormDialog):
    def __init__(self, adapter: ApiAdapter, users: list[str], parent: QWidget | None = None):
        super().__init__("Create API key", "The key acts as the user you pick, with that user's role. Its secret "
                         "is shown once, after you create it.", "Create", parent)
        self.adapter = adapter
        self.created = None
        self.user = self.add_field("User", QComboBox())
        self.user.addItems(users)
        self.label = self.add_field("Label", QLineEdit())
        self.label.setPlaceholderText("grafana, notebook, CI…")
        self.expires = self.add_field("Expires after", double_spin_box(0, 3650, 30, 0, "0 never expires", " days"))
        self.expires.setSpecialValueText("never")

    def act(self) -> None:
        days = self.expires.value() or None
        self.created = self.adapter.create_key(self.user.currentText(), self.label.text(), days)


class SecretDialog(QDialog):
    """The new key's secret, once: it is stored only as a hash."""

    def __init__(self, secret: str, label: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("New API key")
        note = QLabel(f"The secret of “{label}”. Copy it now: it is not shown again and is stored only as a hash.")
        note.setWordWrap(True)
        self.secret = QLineEdit(secret)
        self.secret.setReadOnly(True)
        self.secret.setObjectName("checksum")
        self.secret.setMinimumWidth(460)
        copy = _copy_button(self.secret.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.secret, 1)
        row.addWidget(copy)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(row)
        layout.addWidget(buttons)


class ApiPanel(QWidget):
    def __init__(self, adapter: ApiAdapter, core, parent: QWidget | None = None):
        super().__init__(parent)
        self.adapter = adapter
        self.core = core
        config = adapter.service.config

        server = QGroupBox("Server")
        form = QFormLayout(server)
        form.setHorizontalSpacing(16)
        self.toggle = QPushButton("Start API")
        self.toggle.setObjectName("primaryButton")
        self.toggle.setToolTip("Serve the loaded model on an OpenAI-compatible API, in this process")
        self.status = QLabel("Off")
        top = QHBoxLayout()
        top.addWidget(self.toggle)
        top.addWidget(self.status, 1)
        form.addRow(top)
        self.host = QComboBox()
        self.host.setEditable(True)
        self.host.addItems(HOSTS)
        self.host.setCurrentText(config.host)
        self.host.setToolTip("127.0.0.1 serves this machine only; 0.0.0.0 every network interface")
        form.addRow("Address", self.host)
        self.port = int_spin_box(1024, 65535, config.port, "The API's port")
        form.addRow("Port", self.port)
        self.require_keys = QCheckBox("Require an API key on every request")
        self.require_keys.setChecked(config.require_keys)
        form.addRow("Keys", self.require_keys)
        self.tls_cert, self.tls_key = QLineEdit(config.tls_cert), QLineEdit(config.tls_key)
        for field, label, title in ((self.tls_cert, "TLS certificate", "Certificate (PEM)"),
                                    (self.tls_key, "TLS private key", "Private key (PEM)")):
            field.setPlaceholderText("none: plain HTTP")
            browse = QPushButton("Browse…")
            browse.clicked.connect(lambda _checked=False, f=field, t=title: self._browse(f, t))
            row = QHBoxLayout()
            row.addWidget(field, 1)
            row.addWidget(browse)
            form.addRow(label, row)
        self.warning = QLabel("")
        self.warning.setObjectName("chatNotice")
        self.warning.setWordWrap(True)
        form.addRow(self.warning)

        connect = QGroupBox("Connect")
        connect_form = QFormLayout(connect)
        self.base_url = QLineEdit()
        self.base_url.setReadOnly(True)
        self.base_url.setObjectName("checksum")
        url_row = QHBoxLayout()
        url_row.addWidget(self.base_url, 1)
        url_row.addWidget(_copy_button(self.base_url.text))
        connect_form.addRow("Base URL", url_row)
        self.curl = _code_box(4)
        self.python = _code_box(7)
        for label, box in (("curl", self.curl), ("Python (openai)", self.python)):
            row = QHBoxLayout()
            row.addWidget(box, 1)
            row.addWidget(_copy_button(box.toPlainText), 0, Qt.AlignmentFlag.AlignTop)
            connect_form.addRow(label, row)

        keys = QGroupBox("Keys and usage today")
        keys_layout = QVBoxLayout(keys)
        self.keys_table = record_table(KEY_COLUMNS)
        self.create_button = QPushButton("Create key…")
        self.revoke_button = QPushButton("Revoke")
        self.in_flight = QLabel("")
        self.keys_hint = QLabel("")
        self.keys_hint.setObjectName("emptyHint")
        self.keys_hint.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.create_button)
        buttons.addWidget(self.revoke_button)
        buttons.addStretch(1)
        buttons.addWidget(self.in_flight)
        keys_layout.addWidget(self.keys_hint)
        keys_layout.addWidget(self.keys_table, 1)
        keys_layout.addLayout(buttons)

        top = QHBoxLayout()  # where it listens beside how to reach it; the keys get the full width below
        top.addWidget(server, 1)
        top.addWidget(connect, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addLayout(top)
        layout.addWidget(keys, 1)

        self.toggle.clicked.connect(self._toggle)
        self.create_button.clicked.connect(self._create_key)
        self.revoke_button.clicked.connect(self._revoke_key)
        self.host.currentTextChanged.connect(self._show_reach)
        adapter.started.connect(self._started)
        adapter.stopped.connect(self._stopped)
        adapter.failed.connect(self._failed)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh_usage)
        self.timer.start()
        self._show_reach()
        self._show_examples()
        self.refresh()

    # --- server ------------------------------------------------------------------------------------------------
    def start_if_enabled(self) -> None:
        """Start the API when the settings say it was on, if the window's caller may start it."""
        if self.core.settings.get("api.enabled") and self.toggle.isEnabled() and not self.adapter.service.serving:
            self._toggle()

    def shutdown(self) -> None:
        """Stop refreshing and stop the API (running requests get their grace period first)."""
        self.timer.stop()
        self.adapter.service.stop(self.adapter.principal())

    def config(self) -> ApiConfig:
        current = self.adapter.service.config
        return ApiConfig(host=self.host.currentText().strip(), port=self.port.value(),
                         require_keys=self.require_keys.isChecked(), tls_cert=self.tls_cert.text().strip(),
                         tls_key=self.tls_key.text().strip(), cors_origins=current.cors_origins,
                         aliases=current.aliases)

    def _toggle(self) -> None:
        if self.adapter.service.serving:
            self.toggle.setEnabled(False)
            self.status.setText("Stopping: running requests may finish…")
            self.adapter.stop()
            return
        try:
            config = self.config().validate()
            self._save(config)
        except ConsoleError as error:
            self._failed(str(error))
            return
        self.toggle.setEnabled(False)
        self.status.setText("Starting…")
        self.adapter.start(config)

    def _save(self, config: ApiConfig) -> None:
        """The next start (and the window's next opening) use what was started now."""
        principal = self.adapter.principal()
        for key, value in (("api.host", config.host), ("api.port", config.port),
                           ("api.require_keys", config.require_keys), ("api.tls_cert", config.tls_cert),
                           ("api.tls_key", config.tls_key), ("api.enabled", True)):
            self.core.settings.set(principal, key, value)

    def _started(self, base_url: str) -> None:
        self.toggle.setEnabled(True)
        self.toggle.setText("Stop API")
        self.status.setText(f"Serving on {base_url}")
        self._set_server_fields_enabled(False)
        self._show_examples()

    def _stopped(self) -> None:
        self.toggle.setEnabled(True)
        self.toggle.setText("Start API")
        self.status.setText("Off")
        self._set_server_fields_enabled(True)
        try:
            self.core.settings.set(self.adapter.principal(), "api.enabled", False)
        except ConsoleError:
            pass  # stopped by someone who may not change settings: the next start is theirs to decide

    def _failed(self, message: str) -> None:
        self.toggle.setEnabled(True)
        self.status.setText(f"⚠ {message}")

    def _set_server_fields_enabled(self, enabled: bool) -> None:
        for widget in (self.host, self.port, self.require_keys, self.tls_cert, self.tls_key):
            widget.setEnabled(enabled)

    def _show_reach(self) -> None:
        host = self.host.currentText().strip()
        if host and not is_loopback(host):
            self.warning.setText(f"⚠ Reachable from the network: on {host} anyone who can reach this machine can "
                                 "try the API. Keys are required; give a TLS certificate so keys and replies are "
                                 "not sent in clear text.")
            self.require_keys.setChecked(True)
            self.require_keys.setEnabled(False)
        else:
            self.warning.setText("")
            self.require_keys.setEnabled(not self.adapter.service.serving)
        self.warning.setVisible(bool(self.warning.text()))

    def _show_examples(self) -> None:
        service = self.adapter.service
        url = service.base_url if service.serving else self.config().base_url()
        models = service.served_models()
        model = models[0].id if models else "MODEL"
        self.base_url.setText(url)
        self.curl.setPlainText(curl_example(url, model))
        self.python.setPlainText(python_example(url, model))

    def _browse(self, field: QLineEdit, title: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, title, field.text(), "PEM files (*.pem *.crt *.key);;All files (*)")
        if path:
            field.setText(path)

    # --- keys and usage ----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the keys and re-gate the controls for the window's caller (after sign-in, switch or lock)."""
        principal = self.adapter.principal()
        may_serve = self.core.can(principal, "settings:edit")
        may_manage = self.core.can(principal, "users:manage")
        self.toggle.setEnabled(may_serve and not self.adapter.busy)
        self.toggle.setToolTip("" if may_serve else "Starting the API needs the 'settings:edit' permission.")
        self.create_button.setEnabled(may_manage)
        self.revoke_button.setEnabled(may_manage)
        self.keys_hint.setText("" if may_manage else "Keys are managed by those with the 'users:manage' permission.")
        self.keys_hint.setVisible(not may_manage)
        self._keys = self.adapter.keys() if may_manage else []
        self.refresh_usage()

    def refresh_usage(self) -> None:
        usage = self.adapter.usage_today() if self._keys else {}
        in_flight = self.adapter.in_flight()
        rows = []
        for key in self._keys:
            day = usage.get(key.id)
            rows.append((str(key.id), key.name, key.user, key.prefix + "…", key.state,
                         (key.expires_at or "never")[:16].replace("T", " "),
                         (key.last_used_at or "–")[:16].replace("T", " "), str(day.requests if day else 0),
                         f"{day.prompt_tokens:,} / {day.completion_tokens:,}" if day else "0 / 0",
                         str(day.errors if day else 0), str(in_flight.get(key.id, 0))))
        fill(self.keys_table, rows)
        total = sum(in_flight.values())
        self.in_flight.setText(f"{total} request{'s' if total != 1 else ''} in flight" if self.adapter.service.serving
                               else "API off")
        if self.adapter.service.serving:
            self._show_examples()

    def _create_key(self) -> None:
        users = [user.name for user in self.core.access.users(self.adapter.principal())]
        dialog = CreateKeyDialog(self.adapter, users, self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.created is not None:
            self.refresh()
            SecretDialog(dialog.created.secret, dialog.created.key.name, self).exec()

    def _revoke_key(self) -> None:
        row = self.keys_table.currentRow()
        if row < 0 or row >= len(self._keys):
            self.status.setText("Select a key to revoke first.")
            return
        try:
            self.adapter.revoke_key(self._keys[row].id)
        except ConsoleError as error:
            self.status.setText(f"⚠ {error}")
        self.refresh()
