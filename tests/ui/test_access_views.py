"""The access-control widgets driven through pytest-qt: first-run admin, sign-in and lock-out, the role-gated
settings view, user management, the audit view, idle lock and switching user in the main window."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from console.core import ConsoleCore
from tests.access_helpers import ROLE_PASSWORD, TEST_ADMIN, TEST_PASSWORD, admin_core, audit_entries, desktop_as, raw_database
from ui.access.desktop_session import DesktopSession
from ui.access.account_dialogs import FirstAdminDialog, SignInDialog
from ui.app import build_main_window
from ui.access.audit_view import AuditView
from ui.access.session_lock import IdleLock
from ui.settings.settings_view import SettingsView


@pytest.fixture
def fresh_core(tmp_path):
    """A desktop session on a data directory without any account."""
    core = ConsoleCore(data_dir=tmp_path / "data")
    yield DesktopSession(core)
    core.shutdown()


def type_into(qtbot, field, text):
    field.clear()
    qtbot.keyClicks(field, text)


def test_first_start_creates_the_administrator_and_explains_weak_passwords(qtbot, fresh_core):
    dialog = FirstAdminDialog(fresh_core)
    qtbot.addWidget(dialog)
    dialog.show()
    assert "at least 10 characters" in dialog.intro.text()
    type_into(qtbot, dialog.user_name, "root")
    type_into(qtbot, dialog.password, "short")
    type_into(qtbot, dialog.confirm, "short")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert "too short" in dialog.error.text() and dialog.result() != QDialog.DialogCode.Accepted
    type_into(qtbot, dialog.password, "a-long-pass-phrase")
    type_into(qtbot, dialog.confirm, "a-long-pass-phrase")
    qtbot.keyClick(dialog.confirm, Qt.Key.Key_Return)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert fresh_core.principal.user == "root" and fresh_core.principal.role == "admin"


def test_sign_in_shows_a_wrong_password_then_lets_the_right_one_in(qtbot, tmp_path):
    session = desktop_as(tmp_path / "data", "admin")
    session.sign_out()
    try:
        dialog = SignInDialog(session)
        qtbot.addWidget(dialog)
        type_into(qtbot, dialog.user_name, TEST_ADMIN)
        type_into(qtbot, dialog.password, "not-the-password")
        dialog.submit()
        assert dialog.error.text() == "⚠ Wrong user name or password." and session.principal is None
        type_into(qtbot, dialog.password, TEST_PASSWORD)
        dialog.submit()
        assert dialog.result() == QDialog.DialogCode.Accepted and session.principal.user == TEST_ADMIN
    finally:
        session.core.shutdown()


def test_the_sign_in_dialog_says_when_the_account_is_locked(qtbot, tmp_path):
    session = desktop_as(tmp_path / "data", "admin")
    session.sign_out()
    try:
        dialog = SignInDialog(session)
        qtbot.addWidget(dialog)
        type_into(qtbot, dialog.user_name, TEST_ADMIN)
        type_into(qtbot, dialog.password, "wrong-password-x")
        for _ in range(5):
            dialog.submit()
        type_into(qtbot, dialog.password, TEST_PASSWORD)
        dialog.submit()
        assert "Too many failed attempts" in dialog.error.text() and session.principal is None
    finally:
        session.core.shutdown()


def test_a_viewer_sees_the_settings_read_only_and_no_user_management(qtbot, tmp_path):
    session = desktop_as(tmp_path / "data", "viewer")
    try:
        view = SettingsView(session)
        qtbot.addWidget(view)
        view.show()
        assert view.scroll.isVisible() and not view.denied.isVisible()
        assert not any(field.widget.isEnabled() for field in view.fields.values())
        assert not view.apply_button.isVisible() and view.status.text() == "Read-only for your role."
        assert not view.users.isVisible()
    finally:
        session.core.shutdown()


def test_an_operator_changes_the_batch_size_in_the_settings_view(qtbot, tmp_path):
    session = desktop_as(tmp_path / "data", "operator")
    core = session.core
    try:
        view = SettingsView(session)
        qtbot.addWidget(view)
        assert view.fields["engine.max_batch_size"].widget.isEnabled()
        assert not view.fields["prometheus.enabled"].widget.isEnabled()
        view.fields["engine.max_batch_size"].widget.setValue(12)
        qtbot.mouseClick(view.apply_button, Qt.MouseButton.LeftButton)
        assert core.settings.get("engine.max_batch_size") == 12
        change = audit_entries(core.data_dir, action="settings.change")[0]
        assert change.actor == "operator" and '"old": 8' in change.details and '"new": 12' in change.details
        assert view.status.text() == "Saved 1 change."
    finally:
        core.shutdown()


def test_an_admin_creates_a_user_and_cannot_delete_the_last_admin(qtbot, tmp_path):
    session = desktop_as(tmp_path / "data", "admin")
    core = session.core
    try:
        view = SettingsView(session)
        qtbot.addWidget(view)
        users = view.users
        dialog = users.new_user_dialog()
        dialog.name.setText("dana")
        dialog.role.setCurrentText("tester")
        dialog.password.setText(ROLE_PASSWORD)
        dialog.confirm.setText(ROLE_PASSWORD)
        dialog.submit()
        assert dialog.result() == QDialog.DialogCode.Accepted
        names = [users.users.item(row, 0).text() for row in range(users.users.rowCount())]
        assert names == ["admin", "dana"]
        users.users.selectRow(0)
        users.delete_user(confirm=False)
        assert "last administrator" in users.message.text()
    finally:
        core.shutdown()


def test_the_audit_view_filters_verifies_and_exports(qtbot, tmp_path):
    session = desktop_as(tmp_path / "data", "admin")
    core = session.core
    try:
        core.access.create_user(session.principal, "erin", ROLE_PASSWORD, "viewer")
        view = AuditView(session)
        qtbot.addWidget(view)
        actions = {view.table.item(row, 3).text() for row in range(view.table.rowCount())}
        assert {"user.create", "auth.sign_in"} <= actions
        type_into(qtbot, view.actor, "nobody-at-all")
        qtbot.keyClick(view.actor, Qt.Key.Key_Return)
        assert view.table.rowCount() == 0
        view.verify()
        assert view.verdict.text().startswith("✔ Chain intact")
        database = raw_database(core.data_dir)
        with database.write() as db:
            db.execute("update audit_log set target = 'forged' where seq = 1")
        database.close()
        view.verify()
        assert "entry 1" in view.verdict.text() and view.verdict.property("state") == "error"
        type_into(qtbot, view.actor, "")
        path = view.export_csv(tmp_path / "audit.csv")
        assert path.read_text().splitlines()[0] == "seq,time,actor,action,target,outcome,details,hash"
    finally:
        core.shutdown()


def test_idle_lock_fires_once_after_the_idle_minutes(qtbot):
    now = [0.0]
    lock = IdleLock(1, clock=lambda: now[0])
    fired = []
    lock.locked.connect(lambda: fired.append(True))
    now[0] = 59
    lock.check()
    assert fired == []
    now[0] = 61
    lock.check()
    lock.check()
    assert fired == [True]
    lock.resume()
    lock.set_minutes(0)  # never
    now[0] = 10_000
    lock.check()
    assert fired == [True]


@pytest.fixture
def window(admin_window):
    return admin_window


def signed_in_dialog(session, user, password, **options) -> SignInDialog:
    dialog = SignInDialog(session, **options)
    dialog.user_name.setText(user)
    dialog.password.setText(password)
    dialog.submit()
    assert dialog.result() == QDialog.DialogCode.Accepted, dialog.error.text()
    return dialog


def test_locking_hides_the_workspace_and_unlocking_signs_in_again(window):
    session = window.session
    window.lock_session()
    assert window.pages.currentWidget() is window.lock_page and session.principal is None
    assert audit_entries(session.core.data_dir, limit=1)[0].details == '{"reason": "locked"}'
    assert window.unlock(signed_in_dialog(session, TEST_ADMIN, TEST_PASSWORD, locked_user=TEST_ADMIN))
    assert window.pages.currentIndex() == 0 and session.principal.user == TEST_ADMIN


def test_switching_to_a_viewer_hides_what_a_viewer_may_not_do(window):
    session = window.session
    session.core.access.create_user(session.principal, "vic", ROLE_PASSWORD, "viewer")
    assert window.switch_user(signed_in_dialog(session, "vic", ROLE_PASSWORD))
    tabs = window.tabs
    visible = {tabs.tabText(i) for i in range(tabs.count()) if tabs.isTabVisible(i)}
    assert visible == {"Chat", "Engine", "Models", "Telemetry", "Lab", "Settings"}  # the lab's results need metrics:view
    assert not window.model_bar.load_button.isEnabled() and not window.chat_panel.send_button.isEnabled()
    assert window.session_label.text() == "Signed in as vic (viewer)"
    window.chat_panel.input.setReadOnly(False)
    window.chat_panel.input.setPlainText("hello")
    window.chat_panel.send()  # even if a widget slipped through, the service refuses
    assert "may not chat with the model" in window.chat_panel.notice.text()


def test_stored_engine_defaults_apply_to_a_new_window(qtbot, tmp_path):
    core, admin = admin_core(tmp_path / "data")
    core.settings.set(admin, "engine.precision", "int8")
    core.settings.set(admin, "engine.max_new_tokens", 99)
    core.settings.set(admin, "engine.max_batch_size", 3)
    core.shutdown()
    main_window = build_main_window(*admin_core(tmp_path / "data"))
    qtbot.addWidget(main_window)
    try:
        assert main_window.model_bar.precision_combo.currentText() == "int8"
        assert main_window.chat_panel.controls.max_new_tokens.value() == 99
        assert main_window.adapter.core.engine_settings.max_batch_size == 3
    finally:
        main_window.shutdown()


def test_saved_settings_apply_to_the_open_window_at_once(admin_window):
    view = admin_window.settings_view
    view.fields["engine.max_batch_size"].widget.setValue(5)
    view.fields["engine.max_wait_ms"].widget.setValue(12.0)
    view.fields["engine.max_new_tokens"].widget.setValue(77)
    view.fields["security.idle_lock_minutes"].widget.setValue(3)
    view.apply()
    engine_settings = admin_window.adapter.core.engine_settings
    assert (engine_settings.max_batch_size, engine_settings.max_wait_ms) == (5, 12.0)
    assert admin_window.engine_panel.max_batch_size.value() == 5
    assert admin_window.chat_panel.controls.max_new_tokens.value() == 77
    assert admin_window.idle_lock.minutes == 3
