"""User and role management, shown only with `users:manage` (the access service checks again)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.errors import ConsoleError
from console.passwords import RULES
from console.permissions import PERMISSIONS


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class UserDialog(QDialog):
    """New user: name, role, password twice."""

    def __init__(self, roles: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Create user")
        self.name = QLineEdit()
        self.role = QComboBox()
        self.role.addItems(roles)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm = QLineEdit()
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        rules = QLabel(f"Password rules: {RULES}.")
        rules.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("User name", self.name)
        form.addRow("Role", self.role)
        form.addRow("Password", self.password)
        form.addRow("Password again", self.confirm)
        form.addRow(rules)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class RoleDialog(QDialog):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Create role")
        self.name = QLineEdit()
        self.boxes = {name: QCheckBox(f"{name} — {text}") for name, text in PERMISSIONS.items()}
        form = QFormLayout(self)
        form.addRow("Role name", self.name)
        for box in self.boxes.values():
            form.addRow(box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def permissions(self) -> set[str]:
        return {name for name, box in self.boxes.items() if box.isChecked()}


class UsersView(QGroupBox):
    def __init__(self, core, parent: QWidget | None = None):
        super().__init__("Users and roles", parent)
        self.core = core
        self.users = _table(["User", "Role", "Created", "By"])
        self.roles = _table(["Role", "Kind", "Permissions"])
        self.create_button = QPushButton("Create user…")
        self.role_button = QPushButton("Change role…")
        self.reset_button = QPushButton("Reset password…")
        self.delete_button = QPushButton("Delete user")
        self.create_role_button = QPushButton("Create role…")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.create_button, self.role_button, self.reset_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.create_role_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.users)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(QLabel("Roles"))
        layout.addWidget(self.roles)
        self.users.setMinimumHeight(140)
        self.roles.setMinimumHeight(160)
        self.create_button.clicked.connect(self.create_user)
        self.role_button.clicked.connect(self.change_role)
        self.reset_button.clicked.connect(self.reset_password)
        self.delete_button.clicked.connect(self.delete_user)
        self.create_role_button.clicked.connect(self.create_role)

    def refresh_for_session(self) -> None:
        self.setVisible(self.core.can("users:manage"))
        if not self.core.can("users:manage"):
            return
        users = self.core.access.users(self.core.session)
        self.users.setRowCount(len(users))
        for row, user in enumerate(users):
            for column, text in enumerate((user.name, user.role, user.created_at[:19].replace("T", " "), user.created_by)):
                self.users.setItem(row, column, QTableWidgetItem(text))
        roles = self.core.access.roles()
        self.roles.setRowCount(len(roles))
        for row, role in enumerate(roles):
            for column, text in enumerate((role.name, "built-in" if role.builtin else "custom", ", ".join(sorted(role.permissions)))):
                self.roles.setItem(row, column, QTableWidgetItem(text))

    def selected_user(self) -> str | None:
        row = self.users.currentRow()
        return self.users.item(row, 0).text() if row >= 0 else None

    def _run(self, action, success: str) -> bool:
        try:
            action()
        except ConsoleError as error:
            self.message.setText(f"⚠ {error}")
            self.message.setObjectName("chatNotice")
            self.message.style().polish(self.message)
            return False
        self.message.setText(success)
        self.message.setObjectName("")
        self.message.style().polish(self.message)
        self.refresh_for_session()
        return True

    def new_user_dialog(self) -> UserDialog:
        return UserDialog([role.name for role in self.core.access.roles()], self)

    def create_user(self) -> None:
        dialog = self.new_user_dialog()
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.submit_new_user(dialog)

    def submit_new_user(self, dialog: UserDialog) -> bool:
        def act():
            if dialog.password.text() != dialog.confirm.text():
                raise ConsoleError("The two passwords differ.")
            self.core.access.create_user(self.core.session, dialog.name.text(), dialog.password.text(), dialog.role.currentText())

        return self._run(act, f"Created {dialog.name.text()} ({dialog.role.currentText()}).")

    def change_role(self) -> None:
        name = self.selected_user()
        if name is None:
            return
        role, ok = QInputDialog.getItem(self, "Change role", f"New role for {name}", [r.name for r in self.core.access.roles()], 0, False)
        if ok:
            self._run(lambda: self.core.access.set_role(self.core.session, name, role), f"{name} is now {role}.")

    def reset_password(self) -> None:
        name = self.selected_user()
        if name is None:
            return
        password, ok = QInputDialog.getText(self, "Reset password", f"New password for {name}\n({RULES})", QLineEdit.EchoMode.Password)
        if ok:
            self._run(lambda: self.core.access.reset_password(self.core.session, name, password), f"Password of {name} changed.")

    def delete_user(self, confirm: bool = True) -> None:
        name = self.selected_user()
        if name is None:
            return
        if confirm and QMessageBox.question(self, "Delete user", f"Delete {name}? This cannot be undone.") != QMessageBox.StandardButton.Yes:
            return
        self._run(lambda: self.core.access.delete_user(self.core.session, name), f"Deleted {name}.")

    def create_role(self) -> None:
        dialog = RoleDialog(self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self._run(lambda: self.core.access.create_role(self.core.session, dialog.name.text(), dialog.permissions()),
                      f"Created role {dialog.name.text()}.")
