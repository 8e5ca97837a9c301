"""Dialogs for accounts: create the first administrator, sign in (also to unlock or switch user), change
the password. Each calls the core on accept and closes only on success; errors show inline."""

from __future__ import annotations

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
from console.passwords import RULES


def _password_field() -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    return field


class _AccountDialog(QDialog):
    def __init__(self, title: str, intro: str, ok_text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(480)
        self.intro = QLabel(intro)
        self.intro.setWordWrap(True)
        self.form = QFormLayout()
        self.error = QLabel("")
        self.error.setObjectName("chatNotice")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(ok_text)
        self.ok_button.setObjectName("primaryButton")
        self.ok_button.setDefault(True)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # wrapped text never clipped
        layout.addWidget(self.intro)
        layout.addLayout(self.form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def show_error(self, message: str) -> None:
        self.error.setText(f"⚠ {message}")
        self.error.setVisible(True)
        self.adjustSize()

    def submit(self) -> None:
        try:
            self.act()
        except ConsoleError as error:
            self.show_error(str(error))
            return
        self.accept()

    def act(self) -> None:
        raise NotImplementedError


class FirstAdminDialog(_AccountDialog):
    """First start: there is no account and no default password, so the administrator is created here."""

    def __init__(self, core, parent: QWidget | None = None):
        super().__init__("Create the administrator — LLM Console",
                         "Welcome. Create the administrator account: it manages users, roles and settings. "
                         "There is no default account.\n\n"
                         f"Password rules: {RULES}.", "Create administrator", parent)
        self.core = core
        self.user_name = QLineEdit()
        self.password = _password_field()
        self.confirm = _password_field()
        self.form.addRow("User name", self.user_name)
        self.form.addRow("Password", self.password)
        self.form.addRow("Password again", self.confirm)

    def act(self) -> None:
        if self.password.text() != self.confirm.text():
            raise ConsoleError("The two passwords differ.")
        self.core.create_first_admin(self.user_name.text(), self.password.text())


class SignInDialog(_AccountDialog):
    """Sign in at start, to switch user, or to unlock a session locked after idle time (`locked_user`)."""

    def __init__(self, core, locked_user: str | None = None, parent: QWidget | None = None):
        intro = (f"The session of {locked_user} was locked. Enter the password to continue, or sign in as another user."
                 if locked_user else "Sign in to LLM Console.")
        super().__init__("Sign in — LLM Console", intro, "Sign in", parent)
        self.core = core
        self.user_name = QLineEdit(locked_user or "")
        self.password = _password_field()
        self.form.addRow("User name", self.user_name)
        self.form.addRow("Password", self.password)
        (self.password if locked_user else self.user_name).setFocus()

    def act(self) -> None:
        self.core.sign_in(self.user_name.text(), self.password.text())


class ChangePasswordDialog(_AccountDialog):
    def __init__(self, core, parent: QWidget | None = None):
        super().__init__("Change password — LLM Console", f"Password rules: {RULES}.", "Change password", parent)
        self.core = core
        self.current = _password_field()
        self.new = _password_field()
        self.confirm = _password_field()
        self.form.addRow("Current password", self.current)
        self.form.addRow("New password", self.new)
        self.form.addRow("New password again", self.confirm)

    def act(self) -> None:
        if self.new.text() != self.confirm.text():
            raise ConsoleError("The two new passwords differ.")
        self.core.access.change_password(self.core.session, self.current.text(), self.new.text())
