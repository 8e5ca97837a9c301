"""Runs the model registry's long jobs (import, verify, manifest checks: hashing) in a `Worker` and turns
their progress and outcome into this adapter's signals, emitted on the UI thread. One job at a time (starting
another returns False); a job can be cancelled, and a cancelled job has written nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from console.registry.service import RegistryService
from ui.access.desktop_session import DesktopSession
from ui.adapters.worker import Worker


class RegistryAdapter(QObject):
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
        self._worker: Worker | None = None
        # Connected first, so views refresh (`changed`) before they react to the outcome itself.
        self.job_finished.connect(self._job_done)
        self.job_failed.connect(self._job_done)
        self.job_cancelled.connect(self._job_done)

    @property
    def busy(self) -> bool:
        """From a job's start until its outcome reaches the UI thread (before any view reacts to it)."""
        return self._worker is not None and self._worker.running

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
        if self._worker is not None:
            self._worker.cancel()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel the running job and wait for its thread (the database closes after this)."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker.join(timeout)

    # --- the worker --------------------------------------------------------------------------------------
    def _start(self, kind: str, title: str, work: Callable) -> bool:
        """False (and nothing started) while another job runs. `work(progress, cancel)` runs in the worker."""
        if self.busy:
            return False
        worker = Worker(lambda job: work(job.report, job.cancel_requested), f"llm-console-{kind}", kind)
        worker.progressed.connect(lambda progress: self.job_progress.emit(*progress))
        worker.returned.connect(lambda result: self.job_finished.emit(kind, result))
        worker.failed.connect(lambda message: self.job_failed.emit(kind, message))
        worker.cancelled.connect(lambda message: self.job_cancelled.emit(kind, message))
        self._worker = worker
        self.job_started.emit(kind, title)
        worker.start()
        return True

    def _job_done(self, kind: str, _outcome) -> None:
        if kind != "check-manifest":
            self.changed.emit()
