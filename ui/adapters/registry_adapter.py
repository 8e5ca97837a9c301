"""Runs the model registry's long jobs (import, verify, manifest checks: hashing) in a worker thread and turns
their progress and outcome into Qt signals, which Qt queues to the UI thread. One job at a time (starting
another returns False); a job can be cancelled, and a cancelled job has written nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from ui.adapters.thread_relay import ThreadRelay

from console.registry.checksums import HashProgress
from console.errors import ConsoleError, HashingCancelled
from console.registry.service import RegistryService
from ui.access.desktop_session import DesktopSession
from engine import EngineError


class RegistryAdapter(ThreadRelay):
    job_started = Signal(str, str)  # kind ("import", "verify", "register-default", "check-manifest"), title
    job_progress = Signal(object)  # HashProgress
    job_finished = Signal(str, object)  # kind, result (VersionRecord, list of VerificationReport, ManifestCheck)
    job_failed = Signal(str, str)  # kind, message
    job_cancelled = Signal(str, str)  # kind, message
    changed = Signal()  # a job ended and may have changed the registry: views refresh

    def __init__(self, registry: RegistryService, session: DesktopSession, parent: QObject | None = None,
                 register_default_with: Callable | None = None):
        """Jobs act for the session's principal as it is when each job starts. `register_default_with(progress,
        cancel)` registers the embedded model as a system action (ConsoleCore.ensure_default_registered)."""
        super().__init__(parent)
        self.registry = registry
        self.session = session
        self._register_default_with = register_default_with
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._running = False  # set here, cleared when the job's last signal reaches the UI thread
        # Connected first, so the job counts as done before any view reacts to its outcome.
        self.job_finished.connect(self._job_done)
        self.job_failed.connect(self._job_done)
        self.job_cancelled.connect(self._job_done)

    @property
    def busy(self) -> bool:
        return self._running

    # --- jobs --------------------------------------------------------------------------------------------
    def import_model(self, path: str, name: str | None, version: str | None, notes: str = "") -> bool:
        principal = self.session.principal

        def work(progress, cancel):
            return self.registry.import_model(
                principal, Path(path), name=name or None, version=version or None, notes=notes, progress=progress, cancel=cancel
            )

        return self._start("import", f"Importing {Path(path).name}", work)

    def verify(self, version_ids: list[int], force_full: bool = True) -> bool:
        """Re-hash each version ("Verify now", and the schedule)."""

        principal = self.session.principal

        def work(progress, cancel):
            return [self.registry.verify_version(principal, i, force_full=force_full, progress=progress, cancel=cancel)
                    for i in version_ids]

        count = len(version_ids)
        return self._start("verify", f"Verifying {count} version{'s' if count != 1 else ''}", work)

    def register_default(self) -> bool:
        """First start: register the embedded default model."""
        def work(progress, cancel):
            if self._register_default_with is None:
                raise ConsoleError("This window cannot register the embedded model (no core was given).")
            return self._register_default_with(progress, cancel)

        return self._start("register-default", "Registering the embedded default model", work)

    def check_manifest(self, manifest, local_path: str | None) -> bool:
        principal = self.session.principal

        def work(progress, cancel):
            return self.registry.check_manifest(principal, manifest, Path(local_path) if local_path else None,
                                                progress, cancel)

        return self._start("check-manifest", f"Checking files against {manifest.ref}", work)

    def cancel(self) -> None:
        self._cancel.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel the running job and wait for its thread (the database closes after this)."""
        self._cancel.set()
        if self._worker is not None:
            self._worker.join(timeout)

    # --- the worker --------------------------------------------------------------------------------------
    def _start(self, kind: str, title: str, work: Callable) -> bool:
        """False (and nothing started) while another job runs."""
        if self._running:
            return False
        self._running = True
        self._cancel = threading.Event()
        self.job_started.emit(kind, title)
        self._worker = threading.Thread(
            target=self._run, args=(kind, work, self._cancel), name=f"llm-console-{kind}", daemon=True
        )
        self._worker.start()
        return True

    def _job_done(self, kind: str, _outcome) -> None:
        self._running = False
        if kind != "check-manifest":
            self.changed.emit()

    def _run(self, kind: str, work: Callable, cancel: threading.Event) -> None:  # worker thread
        def progress(step: HashProgress) -> None:
            self.emit_from_worker("job_progress", step)

        try:
            result = work(progress, cancel)
        except HashingCancelled as error:
            self.emit_from_worker("job_cancelled", kind, str(error))
        except (ConsoleError, EngineError) as error:
            self.emit_from_worker("job_failed", kind, str(error))
        except Exception as error:  # never let a worker die silently
            self.emit_from_worker("job_failed", kind, f"{kind} failed: {error}")
        else:
            self.emit_from_worker("job_finished", kind, result)
