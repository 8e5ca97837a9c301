"""Runs the lab's sweeps in a worker thread and turns their progress and outcome into signals on the UI thread.

One sweep at a time; Cancel stops it between repetitions, keeping what it measured (resume continues it).
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from console.errors import ConsoleError
from console.lab.sweep_runner import SweepCancelled
from engine import EngineError
from ui.adapters.thread_relay import ThreadRelay


class LabAdapter(ThreadRelay):
    sweep_started = Signal(int)  # sweep id
    sweep_progress = Signal(object)  # SweepProgress
    sweep_finished = Signal(int)
    sweep_cancelled = Signal(int, str)
    sweep_failed = Signal(int, str)

    def __init__(self, core, session, parent: QObject | None = None):
        """`session` is the window's DesktopSession: a sweep acts for the principal that started it."""
        super().__init__(parent)
        self.core = core
        self.session = session
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start(self, load_target, plan, device: str) -> int:
        """Record a new sweep (raises ConsoleError or EngineError at once when refused) and run it."""
        target = self.core.lab.target(load_target)
        sweep = self.core.lab.start(self.session.principal, target, plan, device)
        self.resume(sweep.id)
        return sweep.id

    def resume(self, sweep_id: int) -> None:
        if self.busy:
            raise ConsoleError("A sweep is already running. Wait for it or cancel it.")
        self._cancel = threading.Event()
        self.sweep_started.emit(sweep_id)
        self._worker = threading.Thread(target=self._run, args=(self.session.principal, sweep_id, self._cancel),
                                        name="llm-console-lab", daemon=True)
        self._worker.start()

    def cancel(self) -> None:
        self._cancel.set()

    def shutdown(self, timeout: float = 60.0) -> None:
        self._cancel.set()
        if self._worker is not None:
            self._worker.join(timeout)

    def _run(self, principal, sweep_id: int, cancel: threading.Event) -> None:  # worker thread
        try:
            self.core.lab.run(principal, sweep_id, lambda step: self.emit_from_worker("sweep_progress", step), cancel)
        except SweepCancelled as error:
            self.emit_from_worker("sweep_cancelled", sweep_id, str(error))
        except (ConsoleError, EngineError) as error:
            self.emit_from_worker("sweep_failed", sweep_id, str(error))
        except Exception as error:  # never let a worker die silently
            self.emit_from_worker("sweep_failed", sweep_id, f"The sweep failed: {error}")
        else:
            self.emit_from_worker("sweep_finished", sweep_id)
