"""Telemetry alerts kept in the database: the sink of the telemetry service's alert log."""

from __future__ import annotations

import datetime

from console.storage.database import AppDatabase


class AlertStore:
    def __init__(self, database: AppDatabase):
        self.database = database

    def record(self, event) -> None:
        """Store one AlertEvent (called on the telemetry thread; the database serialises writers)."""
        at = datetime.datetime.fromtimestamp(event.timestamp, datetime.timezone.utc).isoformat(timespec="seconds")
        with self.database.write() as db:
            db["alert_events"].insert({"at": at, "rule": event.rule, "subject": event.subject, "state": event.state,
                                       "value": event.value, "threshold": event.threshold, "text": event.text})

    def recent(self, limit: int = 200) -> list[dict]:
        with self.database.read() as db:
            return list(db.query("select * from alert_events order by id desc limit ?", [limit]))
