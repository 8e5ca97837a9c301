"""The alert log: every firing and resolved event, the newest `capacity` kept in memory, each also handed to
an optional `sink` — the seam where a persistent store (the SQLite registry) connects.

The sink is called on the thread that records (the telemetry sampling thread), after the event is in the
log, outside any lock. It should be quick; an exception in it is kept in `sink_error` and never stops sampling.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

from console.telemetry.alerts import AlertEvent

log = logging.getLogger(__name__)

AlertSink = Callable[[AlertEvent], None]


class AlertLog:
    def __init__(self, capacity: int = 1000, sink: AlertSink | None = None):
        self._lock = threading.Lock()
        self._events: deque[AlertEvent] = deque(maxlen=capacity)
        self.sink = sink
        self.sink_error: str | None = None

    def record(self, event: AlertEvent) -> None:
        with self._lock:
            self._events.append(event)
        sink = self.sink
        if sink is None:
            return
        try:
            sink(event)
        except Exception as error:  # a storage failure must not stop sampling or the other alerts
            self.sink_error = f"Storing the alert failed: {error}"
            log.exception("alert sink failed")
        else:
            self.sink_error = None

    def events(self) -> list[AlertEvent]:
        """Oldest first."""
        with self._lock:
            return list(self._events)

    def __len__(self) -> int:
        return len(self._events)
