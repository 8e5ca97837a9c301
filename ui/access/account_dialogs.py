"""Dialogs for accounts: create the first administrator, sign in (also to unlock or switch user), change
the password. Each calls the core on accept and closes only on success; errors show inline."""

from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox, QLabel, QLineEdit, QPushButton, QWidget

from console.errors import ConsoleError
from console.access.passwords import RULES
from ui.widgets.form_dialog import FormDialog, password_field
from ui.access.desktop_session import DesktopSession


def password_rules_hint() -> QLabel:
    hint = QLabel(f"Password rules: {RULES}.")
    hint.setObjectName("dialogHint")
    hint.setWordWrap(True)
    return hint


class FirstAdminDialog(FormDialog):
    """First start: there is no account and no default password, so the administrator is created here."""

    def __init__(self, session: DesktopSession, parent: QWidget | None = None):
        super().__init__("Create the administrator — LLM Console",
                         "Welcome. Create the administrator account: it manages users, roles and settings. "
                         "There is no default account.\n\n"
                         f"Password rules: {RULES}.", "Create administrator", parent)
        self.session, self.core = session, session.core
        self.user_name = self.add_field("User name", QLineEdit())
        self.password = self.add_field("Password", password_field())
        self.confirm = self.add_field("Password again", password_field())
        self.user_name.setFocus()

    def act(self) -> None:
        if self.password.text() != self.confirm.text():
            raise ConsoleError("The two passwords differ; type the same password twice.")
        self.session.create_first_admin(self.user_name.text(), self.password.text())


class SignInDialog(FormDialog):
    """Sign in at start, to switch user, or to unlock a session locked after idle time (`locked_user`).

    When unlocking, the name is filled in and fixed; "Switch user" frees it, so someone else can
    take over the workstation without restarting the app."""

    def __init__(self, session: DesktopSession, title: str = "Sign in — LLM Console", locked_user: str | None = None,
                 parent: QWidget | None = None):
        intro = (f"The session of {locked_user} was locked after a period without input. "
                 f"Enter {locked_user}'s password to continue." if locked_user else "Sign in to LLM Console.")
        super().__init__(title, intro, "Sign in", parent)
        self.session, self.core = session, session.core
        self.locked_user = locked_user
        self.user_name = self.add_field("User name", QLineEdit(locked_user or ""))
        self.password = self.add_field("Password", password_field())
        self.switch_user_button = QPushButton("Switch user")
        self.switch_user_button.setToolTip("Sign in as another user; this session stays locked")
        self.switch_user_button.setAutoDefault(False)  # Enter still signs in
        self.switch_user_button.clicked.connect(self.switch_to_another_user)
        self.buttons.addButton(self.switch_user_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.switch_user_button.setVisible(locked_user is not None)
        self.user_name.setEnabled(locked_user is None)  # fixed, and visibly so, while unlocking
        (self.password if locked_user else self.user_name).setFocus()

    def switch_to_another_user(self) -> None:
        self.user_name.setEnabled(True)
        self.user_name.clear()
        self.password.clear()
        self.error.setVisible(False)
        self.intro.setText(f"The session of {self.locked_user} stays locked. Sign in as another user.")
        self.switch_user_button.setVisible(False)
        self.user_name.setFocus()

    def act(self) -> None:
        self.session.sign_in(self.user_name.text(), self.password.text())

    def refused(self) -> None:
        self.password.clear()
        self.password.setFocus()


class ChangePasswordDialog(FormDialog):
    def __init__(self, session: DesktopSession, parent: QWidget | None = None):
        user = session.user or "you"
        super().__init__("Change password — LLM Console", f"Change the password of {user}.", "Change password", parent)
        self.session, self.core = session, session.core
        self.current = self.add_field("Current password", password_field())
        self.new = self.add_field("New password", password_field())
        self.confirm = self.add_field("New password again", password_field())
        self.form.addRow(password_rules_hint())
        self.current.setFocus()

    def act(self) -> None:
        if self.new.text() != self.confirm.text():
            raise ConsoleError("The two new passwords differ; type the same new password twice.")
        self.core.access.change_password(self.session.principal, self.current.text(), self.new.text())
