"""The settings view: every setting visible with `settings:view`, editable only where the signed-in user's
role allows it (the settings store checks again on save); user and role management with `users:manage`."""

from __future__ import annotations

import json

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from console.app_settings import SETTINGS, SettingSpec
from console.errors import ConsoleError
from engine.devices import DEVICES, PRECISIONS
from ui.spin_boxes import double_spin_box, int_spin_box
from ui.users_view import UsersView

_CHOICES = {"engine.device": DEVICES, "engine.precision": PRECISIONS, "prometheus.host": ("127.0.0.1", "::1", "localhost", "0.0.0.0")}
_RANGES = {
    "engine.max_batch_size": (1, 1024, ""), "engine.max_wait_ms": (0, 200, " ms"), "engine.max_new_tokens": (1, 32768, ""),
    "telemetry.interval_s": (0.1, 60, " s"), "prometheus.port": (1024, 65535, ""), "security.idle_lock_minutes": (0, 1440, " min"),
}


class SettingField:
    """One setting's editor: reads and writes Python values, whatever the widget."""

    def __init__(self, spec: SettingSpec, value):
        self.spec = spec
        if spec.key in _CHOICES:
            self.widget = QComboBox()
            self.widget.addItems(list(_CHOICES[spec.key]))
        elif isinstance(spec.default, bool):
            self.widget = QCheckBox("on")
        elif isinstance(spec.default, int):
            low, high, suffix = _RANGES[spec.key]
            self.widget = int_spin_box(int(low), int(high), 0, spec.help or spec.label)
            self.widget.setSuffix(suffix)
        elif isinstance(spec.default, float):
            low, high, suffix = _RANGES[spec.key]
            self.widget = double_spin_box(low, high, 0.5, 0.0, spec.help or spec.label, suffix)
        else:
            self.widget = QLineEdit()
            self.widget.setPlaceholderText(spec.help)
        if not isinstance(self.widget, QLineEdit):
            self.widget.setMaximumWidth(260)
        self.error = QLabel("")
        self.error.setObjectName("chatNotice")
        self.error.setVisible(False)
        self.set(value)

    def set(self, value) -> None:
        widget = self.widget
        if isinstance(widget, QComboBox):
            widget.setCurrentText(str(value))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QLineEdit):
            widget.setText(json.dumps(value))
        else:
            widget.setValue(value)

    def value(self):
        widget = self.widget
        if isinstance(widget, QComboBox):
            return widget.currentText()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QLineEdit):
            try:
                return json.loads(widget.text() or "null")
            except ValueError:
                return widget.text()
        return widget.value()


class SettingsView(QWidget):
    def __init__(self, core, parent: QWidget | None = None):
        super().__init__(parent)
        self.core = core
        self.denied = QLabel("You do not have permission to see the settings. Ask an administrator.")
        self.denied.setObjectName("emptyHint")
        self.fields: dict[str, SettingField] = {}
        settings_box = QGroupBox("Settings")
        form = QFormLayout(settings_box)
        for spec in SETTINGS:
            field = SettingField(spec, spec.default)
            self.fields[spec.key] = field
            row = QVBoxLayout()
            row.setSpacing(2)
            row.addWidget(field.widget)
            row.addWidget(field.error)
            form.addRow(spec.label, row)
        self.data_dir = QLabel(str(core.data_dir))
        self.data_dir.setToolTip("Set LLM_CONSOLE_DATA_DIR before starting the app to use another folder")
        form.addRow("Data directory", self.data_dir)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("primaryButton")
        self.status = QLabel("")
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.apply_button)
        form.addRow(buttons)
        self.users = UsersView(core)
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.addWidget(settings_box)
        content_layout.addWidget(self.users)
        content_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addWidget(self.denied)
        layout.addWidget(self.scroll)
        self.apply_button.clicked.connect(self.apply)
        self.refresh_for_session()

    def refresh_for_session(self) -> None:
        session = self.core.session
        visible = self.core.can("settings:view")
        self.denied.setVisible(not visible)
        self.scroll.setVisible(visible)
        if not visible:
            return
        editable = False
        for key, field in self.fields.items():
            field.set(self.core.settings.get(key))
            field.error.setVisible(False)
            may = self.core.settings.can_edit(session, key)
            field.widget.setEnabled(may)
            editable = editable or may
        self.apply_button.setVisible(editable)
        self.status.setText("" if editable else "Read-only for your role.")
        self.users.refresh_for_session()

    def apply(self) -> None:
        saved, failed = 0, 0
        for key, field in self.fields.items():
            field.error.setVisible(False)
            if not field.widget.isEnabled() or field.value() == self.core.settings.get(key):
                continue
            try:
                field.set(self.core.settings.set(self.core.session, key, field.value()))
                saved += 1
            except ConsoleError as error:
                field.error.setText(f"⚠ {error}")
                field.error.setVisible(True)
                failed += 1
        self.status.setText(f"Saved {saved} change{'s' if saved != 1 else ''}." + (f" {failed} refused." if failed else ""))
