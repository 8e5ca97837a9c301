"""The settings view: every setting visible with `settings:view`, editable only where the signed-in user's
role allows it (the settings store checks again on save); user and role management with `users:manage`."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.settings.store import SETTINGS, Choice, NumberRange, SettingSpec
from console.errors import ConsoleError
from ui.widgets.spin_boxes import double_spin_box, int_spin_box
from ui.access.users_view import UsersView
from ui.access.desktop_session import DesktopSession

_HINTS = {  # shown under a field, beside the spec's own help
    "prometheus.host": "127.0.0.1 serves this machine only; 0.0.0.0 serves every network interface",
}
FIELD_WIDTH = 260


OTHER_TAB_PREFIXES = ("api.",)  # edited on the API tab, beside the server they configure

class SettingField:
    """One setting's editor: reads and writes Python values, whatever the widget."""

    def __init__(self, spec: SettingSpec, value):
        self.spec = spec
        check = spec.check  # the store's own check says which widget fits, and its range
        if isinstance(check, Choice):
            self.widget = QComboBox()
            self.widget.addItems(list(check.options))
        elif isinstance(spec.default, bool):
            self.widget = QCheckBox("on")
        elif isinstance(check, NumberRange) and check.kind is int:
            self.widget = int_spin_box(int(check.low), int(check.high), 0, spec.help or spec.label)
            self.widget.setSuffix(check.unit)
        elif isinstance(check, NumberRange):
            self.widget = double_spin_box(check.low, check.high, 0.5, 0.0, spec.help or spec.label, check.unit)
        else:  # JSON: the alert rules
            self.widget = QPlainTextEdit()
            self.widget.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            self.widget.setFixedHeight(72)
            self.widget.setTabChangesFocus(True)
        if not isinstance(self.widget, QPlainTextEdit):
            self.widget.setFixedWidth(FIELD_WIDTH)
        self.hint = QLabel(spec.help or _HINTS.get(spec.key, ""))
        self.hint.setObjectName("dialogHint")
        self.hint.setWordWrap(True)
        self.hint.setVisible(bool(self.hint.text()))
        self.error = QLabel("")
        self.error.setObjectName("chatNotice")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        self.set(value)

    def set(self, value) -> None:
        widget = self.widget
        if isinstance(widget, QComboBox):
            widget.setCurrentText(str(value))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QPlainTextEdit):
            widget.setPlainText(json.dumps(value, indent=1) if value else json.dumps(value))
        else:
            widget.setValue(value)

    def value(self):
        widget = self.widget
        if isinstance(widget, QComboBox):
            return widget.currentText()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QPlainTextEdit):
            try:
                return json.loads(widget.toPlainText() or "null")
            except ValueError:
                return widget.toPlainText()  # the store refuses it with a message saying what is expected
        return widget.value()

    def set_editable(self, editable: bool) -> None:
        self.widget.setEnabled(editable)
        self.widget.setToolTip(self.spec.help or self.spec.label if editable else
                               f"Read-only for your role: changing it needs the '{self.spec.permission}' permission.")

    def show_error(self, message: str | None) -> None:
        self.error.setText(f"⚠ {message}" if message else "")
        self.error.setVisible(bool(message))


class SettingsView(QWidget):
    """`changed` carries {key: new value} for every setting saved by Apply (the window applies them live)."""

    changed = Signal(dict)

    def __init__(self, session: DesktopSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.core = session, session.core
        self.denied = QLabel("You do not have permission to see the settings. Ask an administrator.")
        self.denied.setObjectName("emptyHint")
        self.denied.setWordWrap(True)
        self.denied.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.fields: dict[str, SettingField] = {}
        settings_box = QGroupBox("Settings")
        form = QFormLayout(settings_box)
        form.setVerticalSpacing(8)
        form.setHorizontalSpacing(16)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for spec in SETTINGS:
            if spec.key.startswith(OTHER_TAB_PREFIXES):
                continue
            field = SettingField(spec, spec.default)
            self.fields[spec.key] = field
            column = QVBoxLayout()
            column.setSpacing(2)
            column.addWidget(field.widget)
            column.addWidget(field.hint)
            column.addWidget(field.error)
            form.addRow(spec.label, column)
        self.data_dir = QLabel(str(session.core.data_dir))
        self.data_dir.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.data_dir.setObjectName("checksum")  # monospace, like the other paths and hashes
        data_dir_note = QLabel("Read-only here: set LLM_CONSOLE_DATA_DIR before starting the app to use another folder.")
        data_dir_note.setObjectName("dialogHint")
        data_dir_note.setWordWrap(True)
        data_dir_column = QVBoxLayout()
        data_dir_column.setSpacing(2)
        data_dir_column.addWidget(self.data_dir)
        data_dir_column.addWidget(data_dir_note)
        form.addRow("Data directory", data_dir_column)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("primaryButton")
        self.apply_button.setToolTip("Save the changed settings (Ctrl+S)")
        self.status = QLabel("")
        self.status.setObjectName("dialogHint")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.apply_button)
        form.addRow(buttons)
        self.users = UsersView(session)
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 4, 0)
        content_layout.addWidget(settings_box)
        content_layout.addWidget(self.users)
        content_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addWidget(self.denied)
        layout.addWidget(self.scroll)
        self.apply_button.clicked.connect(self.apply)
        shortcut = QShortcut(QKeySequence.StandardKey.Save, self, self.apply)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.refresh_for_session()

    def refresh_for_session(self) -> None:
        """Re-read the values and re-gate every field for the signed-in user (call after sign-in or switch)."""
        session = self.session.principal
        visible = self.session.can(Permission.SETTINGS_VIEW)
        self.denied.setVisible(not visible)
        self.scroll.setVisible(visible)
        self.users.refresh_for_session()
        if not visible:
            return
        editable = {key: self.core.settings.can_edit(session, key) for key in self.fields}
        for key, field in self.fields.items():
            field.set(self.core.settings.get(key))
            field.show_error(None)
            field.set_editable(editable[key])
        self.apply_button.setVisible(any(editable.values()))
        if not any(editable.values()):
            self.status.setText("Read-only for your role.")
        elif not all(editable.values()):
            needed = sorted({field.spec.permission for key, field in self.fields.items() if not editable[key]})
            self.status.setText(f"Greyed-out settings need the {', '.join(repr(p) for p in needed)} permission "
                                "(administrators).")
        else:
            self.status.setText("")

    def apply(self) -> dict:
        """Save every changed, editable field through the settings store; refusals show under their field."""
        saved, failed = {}, 0
        for key, field in self.fields.items():
            field.show_error(None)
            if not field.widget.isEnabled() or field.value() == self.core.settings.get(key):
                continue
            try:
                saved[key] = self.core.settings.set(self.session.principal, key, field.value())
                field.set(saved[key])
            except ConsoleError as error:
                field.show_error(str(error))
                failed += 1
        if not saved and not failed:
            self.status.setText("Nothing to save: no setting was changed.")
        else:
            self.status.setText(f"Saved {len(saved)} change{'s' if len(saved) != 1 else ''}."
                                + (f" {failed} refused: see the red notes." if failed else ""))
        if saved:
            self.changed.emit(saved)
        return saved
