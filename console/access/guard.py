"""The one permission check: `Guard.require(principal, permission, action)` looks up the caller's *current*
account and role on every call, refuses (and audits the refusal, here and nowhere else) what the role lacks,
and `@requires` declares on each service method what it needs. Services never hold a session of their own.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any, Callable

from console.access.audit_log import AuditLog
from console.access.permissions import BUILTIN_ROLES, Permission
from console.access.principal import Principal
from console.errors import ConsoleError
from console.storage.database import AppDatabase


class AccessError(ConsoleError):
    """Base of sign-in and permission errors."""


class PermissionDenied(AccessError):
    """The caller's role lacks the permission for this action, or the caller is not (or no longer) signed in."""


class Guard:
    """Stateless apart from the database: many principals (threads) can be checked at once."""

    def __init__(self, database: AppDatabase, audit: AuditLog):
        self._database = database
        self._audit = audit

    def permissions_of(self, role: str) -> frozenset[str]:
        if role in BUILTIN_ROLES:
            return BUILTIN_ROLES[role][1]
        with self._database.read() as db:
            rows = list(db.query("select permissions from roles where name = ?", [role]))
        return frozenset(json.loads(rows[0]["permissions"])) if rows else frozenset()

    def current_role(self, principal: Principal | None) -> str | None:
        """The account's role now (None: not signed in, or the account was deleted since)."""
        if principal is None:
            return None
        with self._database.read() as db:
            row = db.execute("select role from users where name = ?", [principal.user]).fetchone()
        return row[0] if row else None

    def can(self, principal: Principal | None, permission: Permission | str) -> bool:
        role = self.current_role(principal)
        return role is not None and permission in self.permissions_of(role)

    def require(self, principal: Principal | None, permission: Permission | str, action: str) -> None:
        """Raise PermissionDenied (and audit it) unless the caller's current role holds `permission`."""
        role = self.current_role(principal)
        if role is not None and permission in self.permissions_of(role):
            return
        who = principal.user if principal else "nobody"
        details: dict[str, Any] = {"permission": str(permission)}
        if principal is not None:
            details["channel"] = principal.channel
            if principal.api_key_id:
                details["api_key"] = principal.api_key_id
        self._audit.append(who, "access.denied", action, outcome="denied", **details)
        if principal is None:
            raise PermissionDenied(f"Sign in first: {action} needs the '{permission}' permission.")
        if role is None:
            raise PermissionDenied(f"{principal.user} no longer has an account, so may not {action}. Sign in again.")
        raise PermissionDenied(
            f"{principal.user} ({role}) may not {action}: it needs the '{permission}' permission. Ask an administrator."
        )

    def record(self, principal: Principal | None, action: str, target: str = "", outcome: str = "ok", db=None,
               **details) -> None:
        """Audit an action done for `principal` (in the caller's open transaction `db`, when given)."""
        actor = principal.user if principal else "system"
        self._audit.append(actor, action, target, outcome, db=db, **details)


PermissionRule = Permission | Callable[[dict[str, Any]], Permission | str]
ActionText = str | Callable[[dict[str, Any]], str]


def requires(permission: PermissionRule, action: ActionText) -> Callable:
    """Declare what a service method needs. The method's first argument after `self` is the principal; its
    object has a `guard`. `permission` and `action` may be computed from the call's arguments (a callable
    given them by name), and `action` may name them: `@requires(Permission.USERS_MANAGE, "delete user {name}")`.
    """

    def decorate(method: Callable) -> Callable:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def guarded(self, principal: Principal | None, *args, **kwargs):
            call = signature.bind(self, principal, *args, **kwargs)
            call.apply_defaults()
            arguments = dict(call.arguments)
            needed = permission(arguments) if callable(permission) else permission
            text = action(arguments) if callable(action) else action.format_map(arguments)
            self.guard.require(principal, needed, text)
            return method(self, principal, *args, **kwargs)

        guarded.required_permission = permission
        return guarded

    return decorate


def declared_permission(method: Callable) -> PermissionRule | None:
    """What a method declared with `@requires` needs (None: not declared)."""
    return getattr(method, "required_permission", None)
