"""Development aid: build the access-control widgets on a temporary data directory and save screenshots.

Run under a virtual screen:
    xvfb-run -a -s "-screen 0 1280x860x24" .venv/bin/python scripts/screenshot_access.py [folder]
It saves settings-admin.png, settings-viewer.png, settings-operator.png, audit.png, sign-in.png,
sign-in-locked.png, first-admin.png, change-password.png, create-user.png, create-role.png,
change-role-refused.png and settings-denied.png in the folder
(default: screenshots/access/ in the checkout, beside the whole-window shots of screenshot.py).
No model is loaded, so it takes a few seconds.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication, QWidget

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.core import ConsoleCore  # noqa: E402
from ui.access.desktop_session import DesktopSession  # noqa: E402
from ui.access.account_dialogs import ChangePasswordDialog, FirstAdminDialog, SignInDialog  # noqa: E402
from ui.app import apply_style  # noqa: E402
from ui.access.audit_view import AuditView  # noqa: E402
from ui.settings.settings_view import SettingsView  # noqa: E402

ADMIN, PASSWORD = "admin", "screenshot-pass-phrase"
OTHERS = {"vic": "viewer", "olga": "operator", "tess": "tester"}


def save(widget: QWidget, path: Path) -> None:
    QApplication.processEvents()
    widget.grab().save(str(path))
    print(f"saved {path}")


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "screenshots" / "access"
    folder.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    apply_style(app)
    data_dir = Path(tempfile.mkdtemp(prefix="llm-console-access-shots-"))

    core = ConsoleCore(data_dir=data_dir)
    session = DesktopSession(core)
    first = FirstAdminDialog(session)
    first.show()
    first.user_name.setText(ADMIN)
    first.password.setText("short")
    first.confirm.setText("short")
    first.submit()  # shows the inline "too short" error
    save(first, folder / "first-admin.png")
    admin = session.create_first_admin(ADMIN, PASSWORD)
    for name, role in OTHERS.items():
        core.access.create_user(admin, name, PASSWORD, role)
    core.settings.set(admin, "engine.max_batch_size", 12)
    core.access.create_role(admin, "auditor", {"audit:view", "metrics:view", "settings:view"},
                            "Reads the audit log and the metrics")
    core.access.create_role(admin, "chatter", {"chat:use"})
    core.access.create_user(admin, "cleo", PASSWORD, "chatter")
    session.sign_out()
    for _ in range(2):
        try:
            session.sign_in("vic", "wrong-password-here")
        except Exception:  # noqa: BLE001 - only to put failed sign-ins into the log
            pass
    session.sign_in(ADMIN, PASSWORD)

    settings = SettingsView(session)
    settings.resize(1180, 1180)
    settings.show()
    settings.fields["prometheus.port"].error.setText("⚠ Prometheus port: must be from 1024 to 65535.")
    settings.fields["prometheus.port"].error.setVisible(True)
    save(settings, folder / "settings-admin.png")
    settings.fields["prometheus.port"].error.setVisible(False)

    audit = AuditView(session)
    audit.resize(1180, 640)
    audit.show()
    audit.verify()
    save(audit, folder / "audit.png")

    for dialog, name in ((settings.users.new_user_dialog(), "create-user.png"), (settings.users.new_role_dialog(), "create-role.png"),
                         (ChangePasswordDialog(session), "change-password.png")):
        dialog.show()
        save(dialog, folder / name)
        dialog.close()
    select = settings.users
    select.users.selectRow(0)  # the administrator: demoting the last one is refused inline
    refused = select.change_role_dialog()
    refused.role.setCurrentText("viewer")
    refused.show()
    refused.submit()
    save(refused, folder / "change-role-refused.png")
    refused.close()

    for user, shot in (("vic", "settings-viewer.png"), ("olga", "settings-operator.png"), ("cleo", "settings-denied.png")):
        session.sign_out()
        session.sign_in(user, PASSWORD)
        settings.refresh_for_session()
        settings.resize(1180, 560)
        save(settings, folder / shot)

    session.sign_out()
    plain = SignInDialog(session)
    plain.show()
    plain.user_name.setText("vic")
    plain.password.setText("not-the-password")
    plain.submit()
    save(plain, folder / "sign-in.png")
    locked = SignInDialog(session, locked_user=ADMIN)
    locked.show()
    save(locked, folder / "sign-in-locked.png")
    core.shutdown()
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
