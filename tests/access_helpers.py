"""Signed-in cores for tests: every service checks permissions, so tests act as a real user."""

from __future__ import annotations

from pathlib import Path

from console.storage import paths
from console.access.control import AccessControl
from console.access.audit_log import AuditLog
from console.core import ConsoleCore
from console.storage.database import open_database

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


def admin_core(data_dir: Path) -> ConsoleCore:
    ensure_admin(data_dir)
    core = ConsoleCore(data_dir=data_dir)
    core.sign_in(TEST_ADMIN, TEST_PASSWORD)
    return core


def core_as(data_dir: Path, role: str) -> ConsoleCore:
    """A core signed in as a user of `role` (named after it), created by the administrator if needed."""
    core = admin_core(data_dir)
    if role == "admin":
        return core
    if role not in {user.name for user in core.access.users(core.session)}:
        core.access.create_user(core.session, role, ROLE_PASSWORD, role)
    core.sign_out()
    core.sign_in(role, ROLE_PASSWORD)
    return core
