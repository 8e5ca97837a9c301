"""A small form dialog that acts on accept and closes only when the action succeeds; a refused action
(any ConsoleError) shows its message inline, in red, and the typed values stay. Enter submits, Esc cancels."""

from __future__ import annotations

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from console.errors import ConsoleError

FIELD_WIDTH = 300  # wide enough for a pass phrase; the dialog's width follows from it


def password_field() -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    return field


class FormDialog(QDialog):
    def __init__(self, title: str, intro: str, ok_text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.intro = QLabel(intro)
        self.intro.setWordWrap(True)
        self.intro.setVisible(bool(intro))
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.error = QLabel("")
        self.error.setObjectName("chatNotice")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(ok_text)
        self.ok_button.setObjectName("primaryButton")
        self.ok_button.setDefault(True)
        for button in self.buttons.buttons():
            button.setIcon(QIcon())  # plain buttons, as in the rest of the app
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # wrapped text is never clipped
        layout.setSpacing(10)
        layout.addWidget(self.intro)
        layout.addLayout(self.form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def add_field(self, label: str, field: QWidget) -> QWidget:
        field.setMinimumWidth(FIELD_WIDTH)
        self.form.addRow(label, field)
        return field

    def show_error(self, message: str) -> None:
        self.error.setText(f"⚠ {message}")
        self.error.setVisible(True)
        self.adjustSize()

    def submit(self) -> None:
        try:
            self.act()
        except ConsoleError as error:
            self.show_error(str(error))
            self.refused()
            return
        self.accept()

    def act(self) -> None:
        """Do the dialog's job through the core; raise a ConsoleError to keep the dialog open."""
        raise NotImplementedError

    def refused(self) -> None:
        """Called after an error is shown (e.g. to clear a wrong password)."""
