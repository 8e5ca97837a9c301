"""User and role management, shown only with `users:manage` (the access service checks again).

Each change opens a small dialog that acts through `core.access` and stays open with the refusal shown
inline (a weak password, a name taken, the last administrator); the tables refresh after every change."""

from __future__ import annotations

import datetime

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.errors import ConsoleError
from console.access.permissions import Permission, PERMISSIONS
from console.storage.timestamps import local_time
from ui.access.account_dialogs import password_rules_hint
from ui.widgets.form_dialog import FormDialog, password_field
from ui.widgets.record_table import fill, record_table
from ui.access.desktop_session import DesktopSession

DEFAULT_NEW_ROLE = "viewer"  # least privilege until the admin picks another


def _passwords_match(password: QLineEdit, confirm: QLineEdit) -> None:
    if password.text() != confirm.text():
        raise ConsoleError("The two passwords differ; type the same password twice.")


class UserDialog(FormDialog):
    """New user: name, role, password twice."""

    def __init__(self, session: DesktopSession, parent: QWidget | None = None):
        super().__init__("Create user — LLM Console", "", "Create user", parent)
        self.session, self.core = session, session.core
        self.name = self.add_field("User name", QLineEdit())
        self.role = self.add_field("Role", QComboBox())
        self.role.addItems([role.name for role in session.core.access.roles()])
        self.role.setCurrentText(DEFAULT_NEW_ROLE)
        self.password = self.add_field("Password", password_field())
        self.confirm = self.add_field("Password again", password_field())
        self.form.addRow(password_rules_hint())

    def act(self) -> None:
        _passwords_match(self.password, self.confirm)
        self.core.access.create_user(self.session.principal, self.name.text(), self.password.text(), self.role.currentText())


class ChangeRoleDialog(FormDialog):
    def __init__(self, session: DesktopSession, user: str, current_role: str, parent: QWidget | None = None):
        super().__init__(f"Change the role of {user} — LLM Console", f"{user} currently has the role {current_role}.", "Change role", parent)
        self.session, self.core, self.user = session, session.core, user
        self.role = self.add_field("New role", QComboBox())
        self.role.addItems([role.name for role in session.core.access.roles()])
        self.role.setCurrentText(current_role)

    def act(self) -> None:
        self.core.access.set_role(self.session.principal, self.user, self.role.currentText())


class ResetPasswordDialog(FormDialog):
    def __init__(self, session: DesktopSession, user: str, parent: QWidget | None = None):
        super().__init__(f"Reset the password of {user} — LLM Console",
                         f"Choose a new password for {user} and tell them in person. This also unlocks the account.",
                         "Reset password", parent)
        self.session, self.core, self.user = session, session.core, user
        self.password = self.add_field("New password", password_field())
        self.confirm = self.add_field("New password again", password_field())
        self.form.addRow(password_rules_hint())

    def act(self) -> None:
        _passwords_match(self.password, self.confirm)
        self.core.access.reset_password(self.session.principal, self.user, self.password.text())


class RoleDialog(FormDialog):
    """New role: a name, a description and the permissions it grants."""

    def __init__(self, session: DesktopSession, parent: QWidget | None = None):
        super().__init__("Create role — LLM Console", "", "Create role", parent)
        self.session, self.core = session, session.core
        self.name = self.add_field("Role name", QLineEdit())
        self.description = self.add_field("Description", QLineEdit())
        self.description.setPlaceholderText("optional: what people with this role do")
        self.boxes: dict[str, QCheckBox] = {}
        for name, text in PERMISSIONS.items():
            box = QCheckBox(name)
            box.setToolTip(text)
            hint = QLabel(text)
            hint.setObjectName("dialogHint")
            self.boxes[name] = box
            self.form.addRow(box, hint)

    def permissions(self) -> set[str]:
        return {name for name, box in self.boxes.items() if box.isChecked()}

    def act(self) -> None:
        self.core.access.create_role(self.session.principal, self.name.text(), self.permissions(), self.description.text())


def _status(locked_until: float | None) -> str:
    if locked_until and locked_until > datetime.datetime.now().timestamp():
        return "locked until " + datetime.datetime.fromtimestamp(locked_until).strftime("%H:%M:%S")
    return "active"


class UsersView(QGroupBox):
    def __init__(self, session: DesktopSession, parent: QWidget | None = None):
        super().__init__("Users and roles", parent)
        self.session, self.core = session, session.core
        self.users = record_table(["User", "Role", "Created", "Created by", "Status"])
        self.roles = record_table(["Role", "Kind", "Description", "Permissions"])
        self.create_button = QPushButton("Create user…")
        self.role_button = QPushButton("Change role…")
        self.reset_button = QPushButton("Reset password…")
        self.delete_button = QPushButton("Delete user…")
        self.create_role_button = QPushButton("Create role…")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        user_buttons = QHBoxLayout()
        for button in (self.create_button, self.role_button, self.reset_button, self.delete_button):
            user_buttons.addWidget(button)
        user_buttons.addStretch(1)
        role_buttons = QHBoxLayout()
        role_buttons.addWidget(self.create_role_button)
        role_buttons.addStretch(1)
        roles_title = QLabel("Roles")
        roles_title.setObjectName("sectionTitle")
        layout = QVBoxLayout(self)
        layout.addWidget(self.users)
        layout.addLayout(user_buttons)
        layout.addWidget(self.message)
        layout.addSpacing(6)
        layout.addWidget(roles_title)
        layout.addWidget(self.roles)
        layout.addLayout(role_buttons)
        # a role's permissions wrap onto more lines rather than being cut off; one-line rows keep their height
        self.roles.verticalHeader().setMinimumSectionSize(self.users.verticalHeader().defaultSectionSize())
        self.roles.horizontalHeader().sectionResized.connect(lambda *_: self.roles.resizeRowsToContents())
        self.users.setMinimumHeight(150)
        self.roles.setMinimumHeight(170)
        self.create_button.clicked.connect(lambda: self.new_user_dialog().exec())
        self.role_button.clicked.connect(lambda: self._exec(self.change_role_dialog()))
        self.reset_button.clicked.connect(lambda: self._exec(self.reset_password_dialog()))
        self.delete_button.clicked.connect(lambda: self.delete_user())
        self.create_role_button.clicked.connect(lambda: self.new_role_dialog().exec())
        self.users.itemSelectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def refresh_for_session(self) -> None:
        allowed = self.session.can(Permission.USERS_MANAGE)
        self.setVisible(allowed)
        if not allowed:
            self.users.setRowCount(0)  # nothing of the last admin's view stays behind a user switch
            self.roles.setRowCount(0)
            return
        selected = self.selected_user()
        users = self.core.access.users(self.session.principal)
        fill(self.users, [(u.name, u.role, local_time(u.created_at), u.created_by, _status(u.locked_until)) for u in users])
        fill(self.roles, [(r.name, "built-in" if r.builtin else "custom", r.description, ", ".join(sorted(r.permissions)))
                          for r in self.core.access.roles()])
        self.roles.resizeRowsToContents()
        for row, user in enumerate(users):
            if user.name == selected:
                self.users.selectRow(row)
        self._update_buttons()

    def selected_user(self) -> str | None:
        rows = self.users.selectionModel().selectedRows()
        return self.users.item(rows[0].row(), 0).text() if rows else None

    def _selected_role(self) -> str:
        return self.users.item(self.users.selectionModel().selectedRows()[0].row(), 1).text()

    def _update_buttons(self) -> None:
        chosen = self.selected_user() is not None
        for button in (self.role_button, self.reset_button, self.delete_button):
            button.setEnabled(chosen)

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(f"⚠ {text}" if error else text)
        self.message.setObjectName("chatNotice" if error else "dialogHint")
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setVisible(True)

    # --- dialogs: each refreshes the tables once it has succeeded ----------------------------------------
    def _after(self, dialog: FormDialog, success) -> FormDialog:
        dialog.accepted.connect(lambda: (self.refresh_for_session(), self.show_message(success())))
        return dialog

    def _exec(self, dialog: FormDialog | None) -> None:
        if dialog is not None:
            dialog.exec()

    def new_user_dialog(self) -> UserDialog:
        dialog = UserDialog(self.session, self)
        return self._after(dialog, lambda: f"Created {dialog.name.text().strip()} ({dialog.role.currentText()}).")

    def change_role_dialog(self) -> ChangeRoleDialog | None:
        name = self.selected_user()
        if name is None:
            return None
        dialog = ChangeRoleDialog(self.session, name, self._selected_role(), self)
        return self._after(dialog, lambda: f"{name} is now {dialog.role.currentText()}.")

    def reset_password_dialog(self) -> ResetPasswordDialog | None:
        name = self.selected_user()
        if name is None:
            return None
        return self._after(ResetPasswordDialog(self.session, name, self), lambda: f"The password of {name} was reset.")

    def new_role_dialog(self) -> RoleDialog:
        dialog = RoleDialog(self.session, self)
        return self._after(dialog, lambda: f"Created role {dialog.name.text().strip()}.")

    def delete_user(self, confirm: bool = True) -> bool:
        name = self.selected_user()
        if name is None:
            return False
        if confirm and QMessageBox.question(
            self, "Delete user", f"Delete {name}? They can no longer sign in; their audit entries stay."
        ) != QMessageBox.StandardButton.Yes:
            return False
        try:
            self.core.access.delete_user(self.session.principal, name)
        except ConsoleError as error:
            self.show_message(str(error), error=True)
            return False
        self.refresh_for_session()
        self.show_message(f"Deleted {name}.")
        return True
