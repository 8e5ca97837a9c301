"""Users, roles, sign-in with lock-out, and the permission check every state-changing service calls.

The check that counts is `AccessControl.require`: widgets may hide what a user cannot do, but the service
refuses it anyway (and the refusal is audited), so the CLI and the HTTP API are protected by the same code.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable

from console.access.audit_log import AuditLog
from console.storage.database import AppDatabase
from console.errors import ConsoleError
from console.access.passwords import check_password_rules, hash_password, verify_password
from console.access.permissions import BUILTIN_ROLES, PERMISSIONS
from console.storage.timestamps import now_iso

MAX_FAILED_ATTEMPTS = 5
FIRST_LOCKOUT_S = 30.0  # doubles with each further lock-out


class AccessError(ConsoleError):
    """Base of sign-in and permission errors."""


class PermissionDenied(AccessError):
    """The signed-in user's role lacks the permission for this action."""


class AuthenticationFailed(AccessError):
    """Unknown user or wrong password (the message does not say which)."""


class AccountLocked(AuthenticationFailed):
    """Too many failed attempts: the account is locked for a while."""


class UserError(AccessError):
    """A user or role change was refused (last admin, unknown role, name taken...)."""


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    permissions: frozenset[str]
    signed_in_at: float

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: str
    created_at: str
    created_by: str
    locked_until: float | None


@dataclass(frozen=True)
class RoleRecord:
    name: str
    description: str
    permissions: frozenset[str]
    builtin: bool


class AccessControl:
    def __init__(self, database: AppDatabase, audit: AuditLog, clock: Callable[[], float] = time.time):
        self.database = database
        self.audit = audit
        self.clock = clock

    # --- roles -------------------------------------------------------------------------------------------
    def roles(self) -> list[RoleRecord]:
        with self.database.read() as db:
            custom = [RoleRecord(r["name"], r["description"] or "", frozenset(json.loads(r["permissions"])), False)
                      for r in db.query("select * from roles order by name")]
        builtin = [RoleRecord(name, text, permissions, True) for name, (text, permissions) in BUILTIN_ROLES.items()]
        return builtin + custom

    def permissions_of(self, role: str) -> frozenset[str]:
        if role in BUILTIN_ROLES:
            return BUILTIN_ROLES[role][1]
        with self.database.read() as db:
            rows = list(db.query("select permissions from roles where name = ?", [role]))
        return frozenset(json.loads(rows[0]["permissions"])) if rows else frozenset()

    def create_role(self, session: Session, name: str, permissions: set[str], description: str = "") -> RoleRecord:
        self.require(session, "users:manage", f"create role {name}")
        name = name.strip()
        unknown = set(permissions) - set(PERMISSIONS)
        if not name or name in BUILTIN_ROLES:
            raise UserError(f"'{name}' cannot be used as a role name.")
        if unknown:
            raise UserError(f"Unknown permission(s): {', '.join(sorted(unknown))}.")
        with self.database.write() as db:
            if db["roles"].count_where("name = ?", [name]):
                raise UserError(f"A role named '{name}' already exists.")
            db["roles"].insert({"name": name, "description": description, "permissions": json.dumps(sorted(permissions)),
                                "created_at": now_iso(), "created_by": session.user})
        self.audit.append(session.user, "role.create", name, permissions=sorted(permissions))
        return RoleRecord(name, description, frozenset(permissions), False)

    # --- users -------------------------------------------------------------------------------------------
    def needs_first_admin(self) -> bool:
        with self.database.read() as db:
            return db["users"].count == 0

    def users(self, session: Session) -> list[UserRecord]:
        self.require(session, "users:manage", "list users")
        with self.database.read() as db:
            return [UserRecord(r["name"], r["role"], r["created_at"], r["created_by"] or "", r["locked_until"])
                    for r in db.query("select * from users order by name")]

    def create_first_admin(self, name: str, password: str) -> Session:
        """Only while no user exists: the first start creates the admin (there is no default password)."""
        name = self._check_new_name(name)
        check_password_rules(password, name)
        with self.database.write() as db:
            if db["users"].count:
                raise UserError("An administrator already exists; sign in instead.")
            self._insert_user(db, name, password, "admin", created_by=name)
        self.audit.append(name, "user.create", name, role="admin", first_admin=True)
        return self._open_session(name, "admin")

    def create_user(self, session: Session, name: str, password: str, role: str) -> UserRecord:
        self.require(session, "users:manage", f"create user {name}")
        name = self._check_new_name(name)
        check_password_rules(password, name)
        self._check_role(role)
        with self.database.write() as db:
            if db["users"].count_where("name = ?", [name]):
                raise UserError(f"A user named '{name}' already exists.")
            self._insert_user(db, name, password, role, created_by=session.user)
        self.audit.append(session.user, "user.create", name, role=role)
        return UserRecord(name, role, now_iso(), session.user, None)

    def set_role(self, session: Session, name: str, role: str) -> None:
        self.require(session, "users:manage", f"change the role of {name}")
        self._check_role(role)
        with self.database.write() as db:
            old = self._role_of(db, name)
            if old == "admin" and role != "admin" and self._admin_count(db) == 1:
                raise UserError(f"{name} is the last administrator; make someone else an administrator first.")
            db.execute("update users set role = ? where name = ?", [role, name])
        self.audit.append(session.user, "user.role", name, old=old, new=role)

    def delete_user(self, session: Session, name: str) -> None:
        self.require(session, "users:manage", f"delete user {name}")
        with self.database.write() as db:
            role = self._role_of(db, name)
            if role == "admin" and self._admin_count(db) == 1:
                raise UserError(f"{name} is the last administrator and cannot be deleted.")
            db.execute("delete from users where name = ?", [name])
        self.audit.append(session.user, "user.delete", name, role=role)

    def reset_password(self, session: Session, name: str, new_password: str) -> None:
        self.require(session, "users:manage", f"reset the password of {name}")
        check_password_rules(new_password, name)
        with self.database.write() as db:
            self._role_of(db, name)
            db.execute("update users set password_hash = ?, failed_attempts = 0, locked_until = null where name = ?",
                       [hash_password(new_password), name])
        self.audit.append(session.user, "user.password_reset", name)

    def change_password(self, session: Session, old_password: str, new_password: str) -> None:
        with self.database.read() as db:
            rows = list(db.query("select password_hash from users where name = ?", [session.user]))
        if not rows or not verify_password(old_password, rows[0]["password_hash"]):
            self.audit.append(session.user, "user.password_change", session.user, outcome="failed")
            raise AuthenticationFailed("The current password is wrong; the password was not changed.")
        check_password_rules(new_password, session.user)
        with self.database.write() as db:
            db.execute("update users set password_hash = ? where name = ?", [hash_password(new_password), session.user])
        self.audit.append(session.user, "user.password_change", session.user)

    # --- sign-in -----------------------------------------------------------------------------------------
    def sign_in(self, name: str, password: str) -> Session:
        name = name.strip()
        now = self.clock()
        with self.database.read() as db:
            rows = list(db.query("select * from users where name = ?", [name]))
        if not rows:
            verify_password(password, hash_password("timing-equaliser"))  # same cost as a wrong password
            self.audit.append(name or "?", "auth.sign_in", name, outcome="failed", reason="unknown user")
            raise AuthenticationFailed("Wrong user name or password.")
        user = rows[0]
        if user["locked_until"] and user["locked_until"] > now:
            wait = max(1, math.ceil(user["locked_until"] - now))
            self.audit.append(name, "auth.sign_in", name, outcome="denied", reason="locked")
            raise AccountLocked(f"Too many failed attempts: {name} is locked for another {wait} s.")
        if not verify_password(password, user["password_hash"]):
            self._record_failure(name, user, now)
            raise AuthenticationFailed("Wrong user name or password.")
        with self.database.write() as db:
            db.execute("update users set failed_attempts = 0, lockouts = 0, locked_until = null, last_sign_in_at = ? "
                       "where name = ?", [now_iso(), name])
        self.audit.append(name, "auth.sign_in", name)
        return self._open_session(name, user["role"])

    def sign_out(self, session: Session, reason: str = "sign out") -> None:
        self.audit.append(session.user, "auth.sign_out", session.user, reason=reason)

    def require(self, session: Session | None, permission: str, action: str) -> None:
        """Raise PermissionDenied (and audit it) unless the session holds `permission`."""
        if session is not None and permission in self.permissions_of(session.role):
            return
        who = session.user if session else "nobody"
        self.audit.append(who, "access.denied", action, outcome="denied", permission=permission)
        if session is None:
            raise PermissionDenied(f"Sign in first: {action} needs the '{permission}' permission.")
        raise PermissionDenied(
            f"{session.user} ({session.role}) may not {action}: it needs the '{permission}' permission. "
            "Ask an administrator."
        )

    # --- helpers -----------------------------------------------------------------------------------------
    def _record_failure(self, name: str, user: dict, now: float) -> None:
        attempts = (user["failed_attempts"] or 0) + 1
        lockouts = user["lockouts"] or 0
        locked_until = None
        if attempts >= MAX_FAILED_ATTEMPTS:
            locked_until = now + FIRST_LOCKOUT_S * 2**lockouts
            attempts, lockouts = 0, lockouts + 1
        with self.database.write() as db:
            db.execute("update users set failed_attempts = ?, lockouts = ?, locked_until = ? where name = ?",
                       [attempts, lockouts, locked_until, name])
        self.audit.append(name, "auth.sign_in", name, outcome="failed", reason="wrong password")
        if locked_until is not None:
            self.audit.append(name, "auth.lockout", name, outcome="denied", seconds=round(locked_until - now))

    def _open_session(self, name: str, role: str) -> Session:
        return Session(name, role, self.permissions_of(role), self.clock())

    def _insert_user(self, db, name: str, password: str, role: str, created_by: str) -> None:
        db["users"].insert({"name": name, "password_hash": hash_password(password), "role": role,
                            "created_at": now_iso(), "created_by": created_by, "failed_attempts": 0, "lockouts": 0})

    @staticmethod
    def _check_new_name(name: str) -> str:
        name = name.strip()
        if not name or len(name) > 64 or any(c.isspace() for c in name):
            raise UserError("A user name must be 1 to 64 characters without spaces.")
        return name

    def _check_role(self, role: str) -> None:
        if role not in {r.name for r in self.roles()}:
            raise UserError(f"Unknown role '{role}'.")

    @staticmethod
    def _role_of(db, name: str) -> str:
        rows = list(db.query("select role from users where name = ?", [name]))
        if not rows:
            raise UserError(f"No user named '{name}'.")
        return rows[0]["role"]

    @staticmethod
    def _admin_count(db) -> int:
        return db["users"].count_where("role = 'admin'")


class Guard:
    """The signed-in session of this process, and the check services call before acting for it."""

    def __init__(self, access: AccessControl):
        self.access = access
        self.session: Session | None = None

    @property
    def user(self) -> str:
        return self.session.user if self.session else "nobody"

    def require(self, permission: str, action: str) -> None:
        self.access.require(self.session, permission, action)

    def can(self, permission: str) -> bool:
        return self.session is not None and permission in self.access.permissions_of(self.session.role)

    def record(self, action: str, target: str = "", outcome: str = "ok", **details) -> None:
        self.access.audit.append(self.user, action, target, outcome, **details)
