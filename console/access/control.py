"""Users, roles and sign-in with lock-out. Every user or role change is a service method declared with
`@requires` (`console/access/guard.py`): the guard checks the caller's current role and audits a refusal, so
the GUI, the CLI and the HTTP API are protected by the same code. Signing in returns a `Principal`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from console.access.audit_log import AuditLog, printable
from console.access.guard import AccessError, Guard, PermissionDenied, requires
from console.access.passwords import DUMMY_HASH, check_password_rules, hash_password, printable_text, verify_password
from console.access.permissions import BUILTIN_ROLES, PERMISSIONS, Permission
from console.access.principal import Principal
from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso

MAX_FAILED_ATTEMPTS = 5
FIRST_LOCKOUT_S = 30.0  # doubles with each further lock-out
UNKNOWN_ACTOR = "unknown user"  # the audit's actor for a name that is no account (the target is its fingerprint)
FINGERPRINT_KEY = "sign_in_name_key"  # the secret of the names' fingerprints, made at the first unknown name

__all__ = ["AccessControl", "AccessError", "PermissionDenied", "AuthenticationFailed", "AccountLocked", "UserError",
           "UserRecord", "RoleRecord", "Principal"]


class AuthenticationFailed(AccessError):
    """Unknown user or wrong password (the message does not say which)."""


class AccountLocked(AuthenticationFailed):
    """Too many failed attempts: the account is locked for a while."""


class UserError(AccessError):
    """A user or role change was refused (last admin, unknown role, name taken...)."""


@dataclass(frozen=True)
class _FailureCounter:
    """The failed-attempt count of one account (`users`) or one typed name that is no account (`sign_in_failures`)."""

    table: str
    column: str
    key: str

    def locked_until(self, db) -> float | None:
        return db.execute(f"select locked_until from {self.table} where {self.column} = ?", [self.key]).fetchone()[0]

    def count_attempt(self, db) -> int:
        """Count one more attempt, in the same statement that reads the count."""
        return db.execute(f"update {self.table} set failed_attempts = coalesce(failed_attempts, 0) + 1 "
                          f"where {self.column} = ? returning failed_attempts", [self.key]).fetchone()[0]

    def lock(self, db, now: float) -> float | None:
        """Lock unless it is locked already; the new end of the lock-out, or None."""
        row = db.execute(f"update {self.table} set locked_until = ? + ? * (1 << coalesce(lockouts, 0)), "
                         f"failed_attempts = 0, lockouts = coalesce(lockouts, 0) + 1 "
                         f"where {self.column} = ? and (locked_until is null or locked_until <= ?) "
                         f"returning locked_until", [now, FIRST_LOCKOUT_S, self.key, now]).fetchone()
        return row[0] if row else None


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
        name = printable_text(name, "role name").strip()
        unknown = set(permissions) - set(PERMISSIONS)
        if not name or name in BUILTIN_ROLES or not name.isprintable():
            raise UserError(f"'{name}' cannot be used as a role name.")
        if unknown:
            raise UserError(f"Unknown permission(s): {', '.join(sorted(unknown))}.")
        with self._database.write() as db:
            if db["roles"].count_where("name = ?", [name]):
                raise UserError(f"A role named '{name}' already exists.")
            db["roles"].insert({"name": name, "description": description, "permissions": json.dumps(sorted(permissions)),
                                "created_at": now_iso(), "created_by": principal.user})
            self.guard.record(principal, "role.create", name, db=db, permissions=sorted(permissions))
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
            self._audit.append(name, "user.create", name, db=db, role="admin", first_admin=True)
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
            self.guard.record(principal, "user.create", name, db=db, role=role)
        return UserRecord(name, role, now_iso(), principal.user, None)

    @requires(Permission.USERS_MANAGE, "change the role of {name}")
    def set_role(self, principal: Principal, name: str, role: str) -> None:
        self._check_role(role)
        with self._database.write() as db:
            old = self._role_of(db, name)
            if old == "admin" and role != "admin" and self._admin_count(db) == 1:
                raise UserError(f"{name} is the last administrator; make someone else an administrator first.")
            db.execute("update users set role = ? where name = ?", [role, name])
            self.guard.record(principal, "user.role", name, db=db, old=old, new=role)

    @requires(Permission.USERS_MANAGE, "delete user {name}")
    def delete_user(self, principal: Principal, name: str) -> None:
        with self._database.write() as db:
            role = self._role_of(db, name)
            if role == "admin" and self._admin_count(db) == 1:
                raise UserError(f"{name} is the last administrator and cannot be deleted.")
            db.execute("delete from users where name = ?", [name])
            self.guard.record(principal, "user.delete", name, db=db, role=role)

    @requires(Permission.USERS_MANAGE, "reset the password of {name}")
    def reset_password(self, principal: Principal, name: str, new_password: str) -> None:
        check_password_rules(new_password, name)
        password_hash = hash_password(new_password)  # outside the transaction: it takes a while
        with self._database.write() as db:
            self._role_of(db, name)
            db.execute("update users set password_hash = ?, failed_attempts = 0, locked_until = null where name = ?",
                       [password_hash, name])
            self.guard.record(principal, "user.password_reset", name, db=db)

    def change_password(self, principal: Principal, old_password: str, new_password: str) -> None:
        """Any signed-in user, for their own account: the current password is the check."""
        with self._database.read() as db:
            rows = list(db.query("select password_hash from users where name = ?", [principal.user]))
        if not rows or not verify_password(old_password, rows[0]["password_hash"]):
            self._audit.append(principal.user, "user.password_change", principal.user, outcome="failed")
            raise AuthenticationFailed("The current password is wrong; the password was not changed.")
        check_password_rules(new_password, principal.user)
        password_hash = hash_password(new_password)
        with self._database.write() as db:
            db.execute("update users set password_hash = ? where name = ?", [password_hash, principal.user])
            self._audit.append(principal.user, "user.password_change", principal.user, db=db)

    # --- sign-in -----------------------------------------------------------------------------------------
    def sign_in(self, name: str, password: str, channel: str = "desktop") -> Principal:
        """Known and unknown names take the same path: the attempt is counted (atomically, before the password
        is checked, so parallel guesses cannot outrun the lock-out), one scrypt runs, and the message, the
        lock-out and the work are the same. A name that is no account is audited by a fingerprint, never as typed."""
        name = printable_text(name, "user name").strip()
        printable_text(password, "password")
        now = self.clock()
        with self._database.write() as db:
            user = db.execute("select role, password_hash from users where name = ?", [name]).fetchone()
            counter = self._counter(db, name, known=user is not None)
            who = name if user is not None else UNKNOWN_ACTOR
            target = name if user is not None else f"#{counter.key}"
            unknown = {} if user is not None else {"name_length": len(name)}
            locked_until = counter.locked_until(db)
            refusal = None
            if locked_until and locked_until > now:
                self._audit.append(who, "auth.sign_in", target, "denied", db=db, reason="locked", **unknown)
                refusal = locked_until
            else:
                attempts = counter.count_attempt(db)
                if attempts > MAX_FAILED_ATTEMPTS:  # guesses in flight beyond the allowance: lock without checking
                    refusal = self._lock(db, counter, who, target, now, unknown)
        if refusal is not None:
            raise AccountLocked(f"Too many failed attempts: {printable(name, 64)} is locked for another "
                                f"{max(1, math.ceil(refusal - now))} s.")
        correct = verify_password(password, user[1] if user is not None else DUMMY_HASH) and user is not None
        with self._database.write() as db:
            if correct:
                db.execute("update users set failed_attempts = 0, lockouts = 0, locked_until = null, "
                           "last_sign_in_at = ? where name = ?", [now_iso(), name])
                self._audit.append(name, "auth.sign_in", name, db=db)
            else:
                self._audit.append(who, "auth.sign_in", target, "failed", db=db,
                                   reason="unknown user" if user is None else "wrong password", **unknown)
                if attempts >= MAX_FAILED_ATTEMPTS:
                    self._lock(db, counter, who, target, now, unknown)
        if not correct:
            raise AuthenticationFailed("Wrong user name or password.")
        return self._principal(name, user[0], channel)

    def sign_out(self, principal: Principal, reason: str = "sign out") -> None:
        self._audit.append(principal.user, "auth.sign_out", principal.user, reason=reason)

    # --- helpers -----------------------------------------------------------------------------------------
    def _counter(self, db, name: str, known: bool) -> "_FailureCounter":
        if known:
            return _FailureCounter("users", "name", name)
        key = self._fingerprint(db, name)
        db.execute("insert or ignore into sign_in_failures (fingerprint, failed_attempts, lockouts) values (?, 0, 0)",
                   [key])
        return _FailureCounter("sign_in_failures", "fingerprint", key)

    def _lock(self, db, counter: "_FailureCounter", who: str, target: str, now: float, unknown: dict) -> float:
        """Lock for a delay that doubles with each lock-out (unless a parallel attempt already locked it)."""
        locked_until = counter.lock(db, now)
        if locked_until is not None:
            self._audit.append(who, "auth.lockout", target, "denied", db=db, seconds=round(locked_until - now),
                               **unknown)
            return locked_until
        return counter.locked_until(db) or now

    def _fingerprint(self, db, name: str) -> str:
        """A short keyed hash of a typed name: the same name gives the same counter and the same audit target,
        yet a password typed into the name field is not kept in a readable form."""
        row = db.execute("select value from settings where key = ?", [FINGERPRINT_KEY]).fetchone()
        if row is None:
            db["settings"].insert({"key": FINGERPRINT_KEY, "value": secrets.token_hex(16)})
            row = db.execute("select value from settings where key = ?", [FINGERPRINT_KEY]).fetchone()
        return hmac.new(bytes.fromhex(row[0]), name.encode("utf-8"), hashlib.sha256).hexdigest()[:12]

    def _principal(self, name: str, role: str, channel: str) -> Principal:
        return Principal(name, role, channel, signed_in_at=self.clock())

    def _insert_user(self, db, name: str, password: str, role: str, created_by: str) -> None:
        db["users"].insert({"name": name, "password_hash": hash_password(password), "role": role,
                            "created_at": now_iso(), "created_by": created_by, "failed_attempts": 0, "lockouts": 0})

    @staticmethod
    def _check_new_name(name: str) -> str:
        name = printable_text(name, "user name").strip()
        if not name or len(name) > 64 or any(c.isspace() for c in name) or not name.isprintable():
            raise UserError("A user name must be 1 to 64 printable characters without spaces.")
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
