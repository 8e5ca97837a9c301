"""Who a call acts for: a principal travels with every guarded service call (the desktop window, a CLI
command and each HTTP API request hold their own), so one core serves many callers at once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

CHANNELS = ("desktop", "cli", "api", "system")


@dataclass(frozen=True)
class Principal:
    """A signed-in caller. `role` is the role at sign-in, for display: the guard checks the user's current role
    on every call, so a demoted or deleted user's open principal loses its rights at once."""

    user: str
    role: str
    channel: str = "desktop"
    api_key_id: str | None = None
    signed_in_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}; one of {', '.join(CHANNELS)}")
