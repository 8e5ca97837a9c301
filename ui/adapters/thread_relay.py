"""Delivering a worker thread's news as signals emitted on the UI thread.

A signal emitted from a worker thread reaches slots of QObjects through Qt's queue, but a plain Python
callable connected to it (a lambda, pytest-qt's waitSignal) would run on the worker thread and touch Qt
from there. Adapters therefore emit their public signals only on the UI thread: workers call
`emit_from_worker("signal_name", ...)`, which queues the emission to the adapter's own thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal


class ThreadRelay(QObject):
    _relay = Signal(str, tuple)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._relay.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def emit_from_worker(self, signal_name: str, *args) -> None:
        """Safe from any thread: the named signal is emitted on this object's (the UI) thread."""
        self._relay.emit(signal_name, args)

    def _deliver(self, signal_name: str, args: tuple) -> None:
        getattr(self, signal_name).emit(*args)
