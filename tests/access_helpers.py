"""Cores and principals for tests: every service checks the principal it is given, so tests act as real users."""

from __future__ import annotations

from pathlib import Path

from console.storage import paths
from console.access.control import AccessControl
from console.access.audit_log import AuditLog
from console.access.principal import Principal
from console.core import ConsoleCore
from console.storage.database import AppDatabase, open_database

TEST_ADMIN = "admin"
TEST_PASSWORD = "correct-horse-battery-1"
ROLE_PASSWORD = "staple-lantern-orbit-7"


def ensure_admin(data_dir: Path) -> None:
    """Create the first administrator in a data directory that has none."""
    database = open_database(paths.database_path(Path(data_dir)))
    try:
        access = AccessControl(database, AuditLog(database))
        if access.needs_first_admin():
            access.create_first_admin(TEST_ADMIN, TEST_PASSWORD)
    finally:
        database.close()


def admin_core(data_dir: Path) -> tuple[ConsoleCore, Principal]:
    """A core on `data_dir` and the test administrator's principal."""
    ensure_admin(data_dir)
    core = ConsoleCore(data_dir=data_dir)
    return core, core.sign_in(TEST_ADMIN, TEST_PASSWORD)


def core_as(data_dir: Path, role: str) -> tuple[ConsoleCore, Principal]:
    """A core and the principal of a user of `role` (named after it), created by the administrator if needed."""
    core, admin = admin_core(data_dir)
    if role == "admin":
        return core, admin
    if role not in {user.name for user in core.access.users(admin)}:
        core.access.create_user(admin, role, ROLE_PASSWORD, role)
    core.sign_out(admin)
    return core, core.sign_in(role, ROLE_PASSWORD)


def raw_database(data_dir: Path) -> AppDatabase:
    """A second connection to the app's database file, for tests that tamper with it as an intruder would."""
    return open_database(paths.database_path(Path(data_dir)))


def audit_entries(data_dir: Path, **filters):
    """The audit log read straight from the file (reading through a core would need a principal)."""
    database = raw_database(data_dir)
    try:
        return AuditLog(database).entries(**filters)
    finally:
        database.close()


def desktop_as(data_dir: Path, role: str):
    """A desktop session (the window's principal holder) signed in as a user of `role`."""
    from ui.access.desktop_session import DesktopSession

    return DesktopSession(*core_as(data_dir, role))
