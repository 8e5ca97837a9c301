"""Long work in a thread of its own, with progress, result and error reaching the UI thread one way (napari's
`thread_worker` idea): a `Worker` runs `work(worker)` in a thread and emits its signals on the UI thread.

Errors a user can cause (`ConsoleError`, `EngineError`) fail with their own message; anything else fails with
"<what> failed: …" (and is logged), so a worker never dies silently. `HashingCancelled` counts as cancelled.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from console.errors import ConsoleError, HashingCancelled
from engine import EngineError
from ui.adapters.thread_relay import ThreadRelay

log = logging.getLogger(__name__)


class Worker(ThreadRelay):
    progressed = Signal(tuple)  # whatever the work passed to `report`, as a tuple
    returned = Signal(object)  # the work's result
    failed = Signal(str)  # a message a person can act on
    cancelled = Signal(str)

    def __init__(self, work: Callable[["Worker"], Any], name: str, what: str, parent: QObject | None = None):
        """`work(worker)` may call `worker.report(...)` and watch `worker.cancel_requested`; `what` names the
        job in the message of an unexpected error ("Loading" → "Loading failed: …"). Create it on the UI thread
        and keep a reference until its outcome has arrived: the outcome is queued to this object."""
        super().__init__(parent)
        self._work = work
        self._what = what
        self.cancel_requested = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._running = False
        # Cleared when the outcome reaches the UI thread (not when the thread ends), so a view reacting to
        # the outcome already sees the job as done. Connected first, before any caller's slot.
        for signal in (self.returned, self.failed, self.cancelled):
            signal.connect(self._done)

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> "Worker":
        self._running = True
        self.thread.start()
        return self

    def report(self, *progress) -> None:
        """From the work's thread: emits `progressed(progress)` on the UI thread."""
        self.emit_from_worker("progressed", progress)

    def cancel(self) -> None:
        self.cancel_requested.set()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        try:
            result = self._work(self)
        except HashingCancelled as error:
            self.emit_from_worker("cancelled", str(error))
        except (ConsoleError, EngineError) as error:
            self.emit_from_worker("failed", str(error))
        except Exception as error:  # never let a worker die silently
            log.exception("%s failed", self._what)
            self.emit_from_worker("failed", f"{self._what} failed: {error}")
        else:
            self.emit_from_worker("returned", result)

    def _done(self, _outcome) -> None:
        self._running = False
