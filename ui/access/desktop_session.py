"""Who is signed in at this window: the desktop's principal, passed to every service call the window makes.
The core keeps no session, so switching user or locking only replaces the principal held here."""

from __future__ import annotations

from console.access.permissions import Permission
from console.access.principal import Principal


class DesktopSession:
    def __init__(self, core, principal: Principal | None = None):
        self.core = core
        self.principal = principal

    @property
    def user(self) -> str | None:
        return self.principal.user if self.principal else None

    def sign_in(self, name: str, password: str) -> Principal:
        self.principal = self.core.sign_in(name, password, channel="desktop")
        return self.principal

    def create_first_admin(self, name: str, password: str) -> Principal:
        self.principal = self.core.create_first_admin(name, password, channel="desktop")
        return self.principal

    def sign_out(self, reason: str = "sign out") -> None:
        self.core.sign_out(self.principal, reason)
        self.principal = None

    def can(self, permission: Permission | str) -> bool:
        """Convenience for showing and hiding controls; the services check again on every call."""
        return self.core.can(self.principal, permission)
