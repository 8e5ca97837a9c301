"""Users, roles and sign-in with lock-out. Every user or role change is a service method declared with
`@requires` (`console/access/guard.py`): the guard checks the caller's current role and audits a refusal, so
the GUI, the CLI and the HTTP API are protected by the same code. Signing in returns a `Principal`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable

from console.access.audit_log import AuditLog
from console.access.guard import AccessError, Guard, PermissionDenied, requires
from console.access.passwords import check_password_rules, hash_password, verify_password
from console.access.permissions import BUILTIN_ROLES, PERMISSIONS, Permission
from console.access.principal import Principal
from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso

MAX_FAILED_ATTEMPTS = 5
FIRST_LOCKOUT_S = 30.0  # doubles with each further lock-out

__all__ = ["AccessControl", "AccessError", "PermissionDenied", "AuthenticationFailed", "AccountLocked", "UserError",
           "UserRecord", "RoleRecord", "Principal"]


class AuthenticationFailed(AccessError):
    """Unknown user or wrong password (the message does not say which)."""


class AccountLocked(AuthenticationFailed):
    """Too many failed attempts: the account is locked for a while."""


class UserError(AccessError):
    """A user or role change was refused (last admin, unknown role, name taken...)."""


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
    def __init__(self, database: AppDatabase, audit: AuditLog, guard: Guard | None = None,
                 clock: Callable[[], float] = time.time):
        self._database = database
        self._audit = audit
        self.guard = guard or Guard(database, audit)
        self.clock = clock

    # --- roles -------------------------------------------------------------------------------------------
    def roles(self) -> list[RoleRecord]:
        with self._database.read() as db:
            custom = [RoleRecord(r["name"], r["description"] or "", frozenset(json.loads(r["permissions"])), False)
                      for r in db.query("select * from roles order by name")]
        builtin = [RoleRecord(name, text, permissions, True) for name, (text, permissions) in BUILTIN_ROLES.items()]
        return builtin + custom

    def permissions_of(self, role: str) -> frozenset[str]:
        return self.guard.permissions_of(role)

    @requires(Permission.USERS_MANAGE, "create role {name}")
    def create_role(self, principal: Principal, name: str, permissions: set[str], description: str = "") -> RoleRecord:
        name = name.strip()
        unknown = set(permissions) - set(PERMISSIONS)
        if not name or name in BUILTIN_ROLES:
            raise UserError(f"'{name}' cannot be used as a role name.")
        if unknown:
            raise UserError(f"Unknown permission(s): {', '.join(sorted(unknown))}.")
        with self._database.write() as db:
            if db["roles"].count_where("name = ?", [name]):
                raise UserError(f"A role named '{name}' already exists.")
            db["roles"].insert({"name": name, "description": description, "permissions": json.dumps(sorted(permissions)),
                                "created_at": now_iso(), "created_by": principal.user})
        self._audit.append(principal.user, "role.create", name, permissions=sorted(permissions))
        return RoleRecord(name, description, frozenset(permissions), False)

    # --- users -------------------------------------------------------------------------------------------
    def needs_first_admin(self) -> bool:
        with self._database.read() as db:
            return db["users"].count == 0

    @requires(Permission.USERS_MANAGE, "list users")
    def users(self, principal: Principal) -> list[UserRecord]:
        with self._database.read() as db:
            return [UserRecord(r["name"], r["role"], r["created_at"], r["created_by"] or "", r["locked_until"])
                    for r in db.query("select * from users order by name")]

    def create_first_admin(self, name: str, password: str, channel: str = "desktop") -> Principal:
        """Only while no user exists: the first start creates the admin (there is no default password)."""
        name = self._check_new_name(name)
        check_password_rules(password, name)
        with self._database.write() as db:
            if db["users"].count:
                raise UserError("An administrator already exists; sign in instead.")
            self._insert_user(db, name, password, "admin", created_by=name)
        self._audit.append(name, "user.create", name, role="admin", first_admin=True)
        return self._principal(name, "admin", channel)

    @requires(Permission.USERS_MANAGE, "create user {name}")
    def create_user(self, principal: Principal, name: str, password: str, role: str) -> UserRecord:
        name = self._check_new_name(name)
        check_password_rules(password, name)
        self._check_role(role)
        with self._database.write() as db:
            if db["users"].count_where("name = ?", [name]):
                raise UserError(f"A user named '{name}' already exists.")
            self._insert_user(db, name, password, role, created_by=principal.user)
        self._audit.append(principal.user, "user.create", name, role=role)
        return UserRecord(name, role, now_iso(), principal.user, None)

    @requires(Permission.USERS_MANAGE, "change the role of {name}")
    def set_role(self, principal: Principal, name: str, role: str) -> None:
        self._check_role(role)
        with self._database.write() as db:
            old = self._role_of(db, name)
            if old == "admin" and role != "admin" and self._admin_count(db) == 1:
                raise UserError(f"{name} is the last administrator; make someone else an administrator first.")
            db.execute("update users set role = ? where name = ?", [role, name])
        self._audit.append(principal.user, "user.role", name, old=old, new=role)

    @requires(Permission.USERS_MANAGE, "delete user {name}")
    def delete_user(self, principal: Principal, name: str) -> None:
        with self._database.write() as db:
            role = self._role_of(db, name)
            if role == "admin" and self._admin_count(db) == 1:
                raise UserError(f"{name} is the last administrator and cannot be deleted.")
            db.execute("delete from users where name = ?", [name])
        self._audit.append(principal.user, "user.delete", name, role=role)

    @requires(Permission.USERS_MANAGE, "reset the password of {name}")
    def reset_password(self, principal: Principal, name: str, new_password: str) -> None:
        check_password_rules(new_password, name)
        with self._database.write() as db:
            self._role_of(db, name)
            db.execute("update users set password_hash = ?, failed_attempts = 0, locked_until = null where name = ?",
                       [hash_password(new_password), name])
        self._audit.append(principal.user, "user.password_reset", name)

    def change_password(self, principal: Principal, old_password: str, new_password: str) -> None:
        """Any signed-in user, for their own account: the current password is the check."""
        with self._database.read() as db:
            rows = list(db.query("select password_hash from users where name = ?", [principal.user]))
        if not rows or not verify_password(old_password, rows[0]["password_hash"]):
            self._audit.append(principal.user, "user.password_change", principal.user, outcome="failed")
            raise AuthenticationFailed("The current password is wrong; the password was not changed.")
        check_password_rules(new_password, principal.user)
        with self._database.write() as db:
            db.execute("update users set password_hash = ? where name = ?", [hash_password(new_password), principal.user])
        self._audit.append(principal.user, "user.password_change", principal.user)

    # --- sign-in -----------------------------------------------------------------------------------------
    def sign_in(self, name: str, password: str, channel: str = "desktop") -> Principal:
        name = name.strip()
        now = self.clock()
        with self._database.read() as db:
            rows = list(db.query("select * from users where name = ?", [name]))
        if not rows:
            verify_password(password, hash_password("timing-equaliser"))  # same cost as a wrong password
            self._audit.append(name or "?", "auth.sign_in", name, outcome="failed", reason="unknown user")
            raise AuthenticationFailed("Wrong user name or password.")
        user = rows[0]
        if user["locked_until"] and user["locked_until"] > now:
            wait = max(1, math.ceil(user["locked_until"] - now))
            self._audit.append(name, "auth.sign_in", name, outcome="denied", reason="locked")
            raise AccountLocked(f"Too many failed attempts: {name} is locked for another {wait} s.")
        if not verify_password(password, user["password_hash"]):
            self._record_failure(name, user, now)
            raise AuthenticationFailed("Wrong user name or password.")
        with self._database.write() as db:
            db.execute("update users set failed_attempts = 0, lockouts = 0, locked_until = null, last_sign_in_at = ? "
                       "where name = ?", [now_iso(), name])
        self._audit.append(name, "auth.sign_in", name)
        return self._principal(name, user["role"], channel)

    def sign_out(self, principal: Principal, reason: str = "sign out") -> None:
        self._audit.append(principal.user, "auth.sign_out", principal.user, reason=reason)

    # --- helpers -----------------------------------------------------------------------------------------
    def _record_failure(self, name: str, user: dict, now: float) -> None:
        attempts = (user["failed_attempts"] or 0) + 1
        lockouts = user["lockouts"] or 0
        locked_until = None
        if attempts >= MAX_FAILED_ATTEMPTS:
            locked_until = now + FIRST_LOCKOUT_S * 2**lockouts
            attempts, lockouts = 0, lockouts + 1
        with self._database.write() as db:
            db.execute("update users set failed_attempts = ?, lockouts = ?, locked_until = ? where name = ?",
                       [attempts, lockouts, locked_until, name])
        self._audit.append(name, "auth.sign_in", name, outcome="failed", reason="wrong password")
        if locked_until is not None:
            self._audit.append(name, "auth.lockout", name, outcome="denied", seconds=round(locked_until - now))

    def _principal(self, name: str, role: str, channel: str) -> Principal:
        return Principal(name, role, channel, signed_in_at=self.clock())

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
