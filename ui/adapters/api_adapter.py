"""The Qt side of the local API: starts and stops the server in a worker (stopping waits for running requests)
and reports on the UI thread (`ThreadRelay`). Keys and usage are quick database calls, made directly."""

from __future__ import annotations

import threading
from typing import Callable

from PySide6.QtCore import QObject, Signal

from console.api.config import ApiConfig
from console.api.keys import ApiKey, CreatedKey
from console.api.service import ApiService
from console.api.usage import KeyUsage
from console.errors import ConsoleError
from ui.adapters.thread_relay import ThreadRelay


class ApiAdapter(ThreadRelay):
    started = Signal(str)  # base URL
    stopped = Signal()
    failed = Signal(str)  # why the server did not start

    def __init__(self, service: ApiService, principal: Callable[[], object], parent: QObject | None = None):
        super().__init__(parent)
        self.service = service
        self.principal = principal  # the window's caller now (None while locked)
        self._worker: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start(self, config: ApiConfig) -> None:
        self._in_worker(lambda principal: self.emit_from_worker("started", self.service.start(principal, config)))

    def stop(self) -> None:
        def stop(principal) -> None:
            self.service.stop(principal)
            self.emit_from_worker("stopped")

        self._in_worker(stop)

    def _in_worker(self, work) -> None:
        if self.busy:
            return
        principal = self.principal()

        def run() -> None:
            try:
                work(principal)
            except ConsoleError as error:
                self.emit_from_worker("failed", str(error))

        self._worker = threading.Thread(target=run, name="llm-console-api-control", daemon=True)
        self._worker.start()

    # --- keys and usage (milliseconds: on the UI thread) ------------------------------------------------------
    def keys(self) -> list[ApiKey]:
        return self.service.keys.keys(self.principal())

    def create_key(self, user: str, name: str, expires_days: float | None) -> CreatedKey:
        return self.service.keys.create(self.principal(), user, name, expires_days)

    def revoke_key(self, key_id: int) -> ApiKey:
        return self.service.keys.revoke(self.principal(), key_id)

    def usage_today(self) -> dict[int, KeyUsage]:
        return self.service.usage.usage()

    def in_flight(self) -> dict[int | None, int]:
        return self.service.usage.in_flight()
