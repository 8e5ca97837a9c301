"""Timestamps as stored in the database: ISO 8601 in UTC, to the second, so they sort as text."""

from __future__ import annotations

import datetime


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def parse_iso(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def local_time(text: str | None) -> str:
    """A stored timestamp as the user reads it: local time, to the minute ("2026-05-01 14:03")."""
    if not text:
        return "–"
    return parse_iso(text).astimezone().strftime("%Y-%m-%d %H:%M")
