"""The access-control widgets beyond the basics of test_access_views.py: keyboard use of the account dialogs,
unlocking and switching user, changing a password, the service refusing what a widget lets through, user and
role management dialogs, tamper detection and filters in the audit view, and the idle lock's input tracking.
Real widgets driven through pytest-qt on real SQLite files; no sleeps."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QLineEdit

from console.access.control import AuthenticationFailed
from console.core import ConsoleCore
from tests.access_helpers import ROLE_PASSWORD, TEST_ADMIN, TEST_PASSWORD, audit_entries, desktop_as, raw_database
from ui.access.desktop_session import DesktopSession
from ui.access.account_dialogs import ChangePasswordDialog, FirstAdminDialog, SignInDialog
from ui.access.audit_view import AuditView
from ui.access import session_lock
from ui.access.session_lock import IdleLock
from ui.settings.settings_view import SettingsView

ACCEPTED = QDialog.DialogCode.Accepted
NEW_PASSWORD = "violet-harbour-kettle-3"


@pytest.fixture
def fresh_core(tmp_path):
    """A desktop session on a data directory without any account."""
    core = ConsoleCore(data_dir=tmp_path / "data")
    yield DesktopSession(core)
    core.shutdown()


@pytest.fixture
def admin(tmp_path):
    session = desktop_as(tmp_path / "data", "admin")
    yield session
    session.core.shutdown()


@pytest.fixture
def signed_out(admin):
    admin.sign_out()
    return admin


@pytest.fixture
def operator(tmp_path):
    session = desktop_as(tmp_path / "data", "operator")
    yield session
    session.core.shutdown()


@pytest.fixture
def viewer(tmp_path):
    session = desktop_as(tmp_path / "data", "viewer")
    yield session
    session.core.shutdown()


def shown(qtbot, widget):
    qtbot.addWidget(widget)
    widget.show()
    return widget


def type_into(qtbot, field, text):
    field.clear()
    qtbot.keyClicks(field, text)


# --- first start and sign-in --------------------------------------------------------------------------------
def test_first_admin_dialog_refuses_two_different_passwords(qtbot, fresh_core):
    dialog = shown(qtbot, FirstAdminDialog(fresh_core))
    type_into(qtbot, dialog.user_name, "root")
    type_into(qtbot, dialog.password, "a-long-pass-phrase")
    type_into(qtbot, dialog.confirm, "a-long-pass-phrasE")
    qtbot.keyClick(dialog.confirm, Qt.Key.Key_Return)
    assert "passwords differ" in dialog.error.text() and dialog.isVisible()
    assert fresh_core.principal is None and fresh_core.core.access.needs_first_admin()


def test_escape_cancels_the_first_admin_dialog_without_creating_anyone(qtbot, fresh_core):
    dialog = shown(qtbot, FirstAdminDialog(fresh_core))
    type_into(qtbot, dialog.user_name, "root")
    qtbot.keyClick(dialog.user_name, Qt.Key.Key_Escape)
    assert dialog.result() == QDialog.DialogCode.Rejected and fresh_core.core.access.needs_first_admin()


def test_enter_signs_in_and_a_wrong_password_is_cleared_for_the_next_try(qtbot, signed_out):
    dialog = shown(qtbot, SignInDialog(signed_out, title="Switch user — LLM Console"))
    assert dialog.windowTitle() == "Switch user — LLM Console" and not dialog.switch_user_button.isVisible()
    type_into(qtbot, dialog.user_name, TEST_ADMIN)
    type_into(qtbot, dialog.password, "not-the-password")
    qtbot.keyClick(dialog.password, Qt.Key.Key_Return)
    assert dialog.error.text() == "⚠ Wrong user name or password." and dialog.password.text() == ""
    qtbot.keyClicks(dialog.password, TEST_PASSWORD)
    qtbot.keyClick(dialog.password, Qt.Key.Key_Return)
    assert dialog.result() == ACCEPTED and signed_out.principal.user == TEST_ADMIN


def test_unlocking_fixes_the_name_and_switch_user_lets_someone_else_in(qtbot, admin):
    admin.core.access.create_user(admin.principal, "vic", ROLE_PASSWORD, "viewer")
    admin.sign_out("locked")
    dialog = shown(qtbot, SignInDialog(admin, locked_user=TEST_ADMIN))
    assert dialog.user_name.text() == TEST_ADMIN and not dialog.user_name.isEnabled()
    assert dialog.switch_user_button.isVisible() and "locked" in dialog.intro.text()
    qtbot.mouseClick(dialog.switch_user_button, Qt.MouseButton.LeftButton)
    assert dialog.user_name.isEnabled() and dialog.user_name.text() == "" and dialog.result() != ACCEPTED
    type_into(qtbot, dialog.user_name, "vic")
    type_into(qtbot, dialog.password, ROLE_PASSWORD)
    qtbot.keyClick(dialog.password, Qt.Key.Key_Return)
    assert dialog.result() == ACCEPTED and admin.principal.user == "vic" and admin.principal.role == "viewer"


# --- change password ----------------------------------------------------------------------------------------
def test_change_password_refuses_a_wrong_current_password_then_changes_it(qtbot, admin):
    dialog = shown(qtbot, ChangePasswordDialog(admin))
    type_into(qtbot, dialog.current, "not-my-password")
    type_into(qtbot, dialog.new, NEW_PASSWORD)
    type_into(qtbot, dialog.confirm, NEW_PASSWORD)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert "current password is wrong" in dialog.error.text() and dialog.result() != ACCEPTED
    type_into(qtbot, dialog.current, TEST_PASSWORD)
    type_into(qtbot, dialog.confirm, NEW_PASSWORD + "x")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert "new passwords differ" in dialog.error.text()
    type_into(qtbot, dialog.confirm, NEW_PASSWORD)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == ACCEPTED
    admin.sign_out()
    assert admin.sign_in(TEST_ADMIN, NEW_PASSWORD).user == TEST_ADMIN


def test_change_password_explains_a_weak_new_password(qtbot, admin):
    dialog = shown(qtbot, ChangePasswordDialog(admin))
    type_into(qtbot, dialog.current, TEST_PASSWORD)
    type_into(qtbot, dialog.new, "aaaaaaaaaaaa")
    type_into(qtbot, dialog.confirm, "aaaaaaaaaaaa")
    qtbot.keyClick(dialog.confirm, Qt.Key.Key_Return)
    assert "repeats one character" in dialog.error.text() and dialog.result() != ACCEPTED


# --- settings -----------------------------------------------------------------------------------------------
def test_the_service_refuses_an_admin_setting_even_when_the_widget_is_enabled(qtbot, operator):
    view = shown(qtbot, SettingsView(operator))
    port = view.fields["prometheus.port"]
    assert not port.widget.isEnabled() and "settings:edit" in view.status.text()
    port.widget.setEnabled(True)  # a widget that slipped through: the settings store still checks
    port.widget.setValue(9999)
    qtbot.mouseClick(view.apply_button, Qt.MouseButton.LeftButton)
    assert "may not change the setting 'Prometheus port'" in port.error.text() and port.error.isVisible()
    assert operator.core.settings.get("prometheus.port") == 9479
    assert audit_entries(operator.core.data_dir, action="access.denied")[0].actor == "operator"


def test_invalid_alert_rules_show_under_their_field_and_nothing_is_stored(qtbot, admin):
    view = shown(qtbot, SettingsView(admin))
    rules = view.fields["alerts.rules"]
    rules.widget.setPlainText('{"not": "a list"')
    view.fields["engine.max_new_tokens"].widget.setValue(300)
    with qtbot.waitSignal(view.changed) as saved:
        qtbot.mouseClick(view.apply_button, Qt.MouseButton.LeftButton)
    assert saved.args == [{"engine.max_new_tokens": 300}]
    assert "Alert rules: must be a list of rules" in rules.error.text()
    assert admin.core.settings.get("alerts.rules") == [] and admin.core.settings.get("engine.max_new_tokens") == 300
    assert view.status.text() == "Saved 1 change. 1 refused: see the red notes."


def test_ctrl_s_applies_the_settings(qtbot, admin):
    view = shown(qtbot, SettingsView(admin))
    spin = view.fields["security.idle_lock_minutes"].widget
    spin.setValue(5)
    view.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is view)
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert admin.core.settings.get("security.idle_lock_minutes") == 5


def test_a_role_without_settings_view_sees_only_the_permission_message(qtbot, admin):
    admin.core.access.create_role(admin.principal, "chatter", {"chat:use"})
    admin.core.access.create_user(admin.principal, "cleo", ROLE_PASSWORD, "chatter")
    admin.sign_out()
    admin.sign_in("cleo", ROLE_PASSWORD)
    view = shown(qtbot, SettingsView(admin))
    assert view.denied.isVisible() and not view.scroll.isVisible()
    assert view.denied.text() == "You do not have permission to see the settings. Ask an administrator."


def test_switching_from_admin_to_viewer_regates_the_settings_view(qtbot, admin):
    admin.core.access.create_user(admin.principal, "vic", ROLE_PASSWORD, "viewer")
    view = shown(qtbot, SettingsView(admin))
    assert view.users.isVisible() and view.apply_button.isVisible()
    admin.sign_out()
    admin.sign_in("vic", ROLE_PASSWORD)
    view.refresh_for_session()
    assert not view.users.isVisible() and view.users.users.rowCount() == 0
    assert not view.apply_button.isVisible() and not view.fields["engine.device"].widget.isEnabled()


def test_the_data_directory_is_shown_read_only_with_how_to_move_it(qtbot, viewer):
    view = shown(qtbot, SettingsView(viewer))
    assert view.data_dir.text() == str(viewer.core.data_dir)
    assert any("LLM_CONSOLE_DATA_DIR" in label.text() for label in view.findChildren(type(view.data_dir)))


# --- users and roles ----------------------------------------------------------------------------------------
def user_rows(users_view):
    table = users_view.users
    return {table.item(row, 0).text(): table.item(row, 1).text() for row in range(table.rowCount())}


def select_user(users_view, name):
    rows = [row for row in range(users_view.users.rowCount()) if users_view.users.item(row, 0).text() == name]
    users_view.users.selectRow(rows[0])


def test_a_weak_password_keeps_the_create_user_dialog_open(qtbot, admin):
    view = shown(qtbot, SettingsView(admin))  # kept: the section lives as long as its view
    users = view.users
    dialog = shown(qtbot, users.new_user_dialog())
    assert dialog.role.currentText() == "viewer"  # least privilege unless the admin picks another
    type_into(qtbot, dialog.name, "dana")
    type_into(qtbot, dialog.password, "short")
    type_into(qtbot, dialog.confirm, "short")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert "too short" in dialog.error.text() and dialog.result() != ACCEPTED and "dana" not in user_rows(users)
    type_into(qtbot, dialog.password, ROLE_PASSWORD)
    type_into(qtbot, dialog.confirm, ROLE_PASSWORD)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert user_rows(users)["dana"] == "viewer" and users.message.text() == "Created dana (viewer)."


def test_an_admin_changes_a_role_resets_a_password_and_deletes_a_user(qtbot, admin):
    admin.core.access.create_user(admin.principal, "erin", ROLE_PASSWORD, "viewer")
    view = shown(qtbot, SettingsView(admin))  # kept: the section lives as long as its view
    users = view.users
    assert not users.role_button.isEnabled()  # nothing selected yet
    select_user(users, "erin")
    assert users.role_button.isEnabled()
    dialog = shown(qtbot, users.change_role_dialog())
    dialog.role.setCurrentText("operator")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert user_rows(users)["erin"] == "operator"
    reset = shown(qtbot, users.reset_password_dialog())
    type_into(qtbot, reset.password, NEW_PASSWORD)
    type_into(qtbot, reset.confirm, NEW_PASSWORD)
    qtbot.keyClick(reset.confirm, Qt.Key.Key_Return)
    assert reset.result() == ACCEPTED and users.message.text() == "The password of erin was reset."
    assert users.delete_user(confirm=False) and "erin" not in user_rows(users)
    assert admin.core.access.sign_in("admin", TEST_PASSWORD)  # the admin is untouched


def test_demoting_the_last_admin_is_refused_inside_the_dialog(qtbot, admin):
    view = shown(qtbot, SettingsView(admin))  # kept: the section lives as long as its view
    users = view.users
    select_user(users, TEST_ADMIN)
    dialog = shown(qtbot, users.change_role_dialog())
    dialog.role.setCurrentText("viewer")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert "last administrator" in dialog.error.text() and dialog.result() != ACCEPTED
    assert user_rows(users)[TEST_ADMIN] == "admin"


def test_an_admin_creates_a_role_from_permission_check_boxes(qtbot, admin):
    view = shown(qtbot, SettingsView(admin))  # kept: the section lives as long as its view
    users = view.users
    dialog = shown(qtbot, users.new_role_dialog())
    type_into(qtbot, dialog.name, "auditor")
    for permission in ("audit:view", "metrics:view"):
        dialog.boxes[permission].setChecked(True)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    roles = {users.roles.item(row, 0).text(): users.roles.item(row, 3).text() for row in range(users.roles.rowCount())}
    assert roles["auditor"] == "audit:view, metrics:view"
    assert shown(qtbot, users.new_user_dialog()).role.findText("auditor") >= 0


# --- audit --------------------------------------------------------------------------------------------------
def test_verify_turns_red_when_a_row_is_edited_in_the_database(qtbot, admin):
    view = shown(qtbot, AuditView(admin))
    qtbot.mouseClick(view.verify_button, Qt.MouseButton.LeftButton)
    assert view.verdict.property("state") == "ok" and "intact: " in view.verdict.text()
    database = raw_database(admin.core.data_dir)
    with database.write() as db:
        # entry 2 is the admin's sign-in, whose details are '{}': write something else there
        db.execute("""update audit_log set details = '{"forged": true}' where seq = 2""")
    database.close()
    qtbot.mouseClick(view.verify_button, Qt.MouseButton.LeftButton)
    assert view.verdict.property("state") == "error" and "entry 2" in view.verdict.text()


def test_the_audit_view_filters_by_user_and_outcome(qtbot, admin):
    admin.core.access.create_user(admin.principal, "erin", ROLE_PASSWORD, "viewer")
    with pytest.raises(AuthenticationFailed):
        admin.core.access.sign_in("erin", "wrong-password-x")
    view = shown(qtbot, AuditView(admin))
    type_into(qtbot, view.actor, "erin")
    qtbot.keyClick(view.actor, Qt.Key.Key_Return)
    rows = [(view.table.item(r, 2).text(), view.table.item(r, 5).text()) for r in range(view.table.rowCount())]
    assert rows == [("erin", "failed")] and view.count.text().startswith("1 entry")
    type_into(qtbot, view.actor, "")
    view.outcome.setCurrentText("failed")
    assert {view.table.item(r, 5).text() for r in range(view.table.rowCount())} == {"failed"}
    type_into(qtbot, view.action, "nothing.like.this")
    qtbot.keyClick(view.action, Qt.Key.Key_Return)
    assert view.table.rowCount() == 0 and view.count.text() == "No entries match these filters."


def test_export_csv_writes_the_filtered_entries_with_a_header(qtbot, admin, tmp_path):
    view = shown(qtbot, AuditView(admin))
    type_into(qtbot, view.action, "auth.")
    qtbot.keyClick(view.action, Qt.Key.Key_Return)
    lines = view.export_csv(tmp_path / "audit.csv").read_text().splitlines()
    assert lines[0] == "seq,time,actor,action,target,outcome,details,hash"
    assert len(lines) == 2 and ",auth.sign_in," in lines[1]


def test_a_viewer_sees_the_audit_permission_message(qtbot, viewer):
    view = shown(qtbot, AuditView(viewer))
    assert view.denied.isVisible() and not view.content.isVisible()
    assert "permission to see the audit log" in view.denied.text()


# --- idle lock ----------------------------------------------------------------------------------------------
@pytest.fixture
def idle_lock(qapp):
    now = [1000.0]
    lock = IdleLock(2, clock=lambda: now[0], check_interval_ms=10)
    lock.watch(qapp)
    yield lock, now
    lock.unwatch(QApplication.instance())


def test_typing_keeps_the_session_unlocked(qtbot, idle_lock):
    lock, now = idle_lock
    field = shown(qtbot, QLineEdit())
    lock.watch_window(field.windowHandle())  # the platform may not give the new window the focus here
    fired = []
    lock.locked.connect(lambda: fired.append(True))
    now[0] += 119
    QTest.keyClick(field.windowHandle(), Qt.Key.Key_A)  # input at 1119 s, through the window as a user's key
    assert field.text() == "a"
    now[0] += 100
    lock.check()
    assert fired == []  # 100 s since the key press, 219 s since the start: the key press counted


def test_a_window_that_takes_the_focus_later_is_watched(qtbot, idle_lock):
    lock, now = idle_lock
    dialog = shown(qtbot, QLineEdit())
    dialog.activateWindow()
    qtbot.waitUntil(lambda: QGuiApplication.focusWindow() is dialog.windowHandle(), timeout=5_000)
    now[0] += 119
    qtbot.mouseMove(dialog.windowHandle(), dialog.rect().center())
    QTest.mouseClick(dialog.windowHandle(), Qt.MouseButton.LeftButton, pos=dialog.rect().center())
    assert lock.last_input == 1119


def test_the_idle_lock_leaves_the_widgets_paint_and_timer_events_alone(admin_window, monkeypatch):
    """An application-wide filter ran this Python method for every event of every widget: about 20 for each
    streamed token of a reply, a twentieth of the window's cost while it streams."""
    seen = []

    class CountingInputEvents(frozenset):  # the filter asks it about every event it sees
        def __contains__(self, kind):
            seen.append(kind)
            return frozenset.__contains__(self, kind)

    monkeypatch.setattr(session_lock, "_INPUT_EVENTS", CountingInputEvents(session_lock._INPUT_EVENTS))
    for _ in range(10):
        admin_window.chat_panel.repaint()
        admin_window.statusBar().showMessage("a message the window lays out and paints")
        QApplication.processEvents()
    assert len(seen) < 10, sorted({str(kind) for kind in seen})


def test_the_timer_emits_locked_once_the_clock_passes_the_limit(qtbot, idle_lock):
    lock, now = idle_lock
    now[0] += 121
    with qtbot.waitSignal(lock.locked, timeout=5_000):
        pass  # the 10 ms timer notices the idle time


def test_set_minutes_applies_live(qtbot, idle_lock):
    lock, now = idle_lock
    now[0] += 90
    lock.check()
    assert lock.active
    with qtbot.waitSignal(lock.locked, timeout=1_000):
        lock.set_minutes(1)
        lock.check()
    lock.resume()
    lock.set_minutes(0)  # never
    now[0] += 10**6
    lock.check()
    assert lock.active


# --- the audit tab follows the log ----------------------------------------------------------------------------
def test_the_audit_view_shows_an_entry_a_service_appends_without_a_refresh_click(qtbot, admin):
    view = shown(qtbot, AuditView(admin))
    admin.core.access.create_user(admin.principal, "walt", ROLE_PASSWORD, "viewer")  # as another client would
    qtbot.waitUntil(lambda: any(view.table.item(row, 4).text() == "walt" for row in range(view.table.rowCount())),
                    timeout=10_000)
    assert view.table.item(0, 3).text() == "user.create"
