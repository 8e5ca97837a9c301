"""Locks the session after a period without keyboard or mouse input (the admin sets the minutes; 0 = never).

`watch(app)` installs it as an event filter on every top-level window (QWindow) of the app, the main window and
each dialog as it takes the focus: every key press, click, wheel or mouse move reaches a window before any
widget, so it counts as input. Not on the QApplication: there the filter would run, in Python, for every
paint, layout and timer event of every widget (about 20 events for each streamed token of a reply).
A timer checks every `check_interval_ms`; the clock is injectable so tests move time instead of waiting."""

from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QWindow

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

    def watch(self, app: QGuiApplication) -> None:
        """Count the input of the app's top-level windows: those there now and each one that takes the focus
        later (a filter installed twice on one window acts once)."""
        for window in app.topLevelWindows():
            self.watch_window(window)
        app.focusWindowChanged.connect(self.watch_window)

    def watch_window(self, window: QWindow | None) -> None:
        if window is not None:
            window.installEventFilter(self)

    def unwatch(self, app: QGuiApplication) -> None:
        app.focusWindowChanged.disconnect(self.watch_window)
        for window in app.topLevelWindows():
            window.removeEventFilter(self)
        self.timer.stop()

    def set_minutes(self, minutes: float) -> None:
        """Change the limit live (the idle time so far counts against the new limit)."""
        self.minutes = minutes

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # installed on the top-level windows
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
