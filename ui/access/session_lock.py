"""Locks the session after a period without keyboard or mouse input (the admin sets the minutes; 0 = never).

Install it as an event filter on the QApplication: every key press, click, wheel or mouse move counts as input.
A timer checks every `check_interval_ms`; the clock is injectable so tests move time instead of waiting."""

from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QEvent, QObject, QTimer, Signal

_INPUT_EVENTS = {QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.Wheel}


class IdleLock(QObject):
    locked = Signal()

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic, parent: QObject | None = None,
                 check_interval_ms: int = 5_000):
        super().__init__(parent)
        self.clock = clock
        self.minutes = minutes
        self.last_input = clock()
        self.active = True
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(check_interval_ms)

    def set_minutes(self, minutes: float) -> None:
        """Change the limit live (the idle time so far counts against the new limit)."""
        self.minutes = minutes

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # installed on the QApplication
        if event.type() in _INPUT_EVENTS:
            self.last_input = self.clock()
        return False

    def check(self) -> None:
        """Emit `locked` once when the idle time passes the limit; `resume()` re-arms it after unlocking."""
        if self.active and self.minutes > 0 and self.clock() - self.last_input >= self.minutes * 60:
            self.active = False
            self.locked.emit()

    def resume(self) -> None:
        self.last_input = self.clock()
        self.active = True
