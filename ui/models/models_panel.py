"""The Models tab: registered models and versions with their verified state, the selected version's details
(`version_details.py`), and the registry's actions: import, verify, load, set as default, retire, manifests.
Hashing runs in `RegistryAdapter`'s worker; this panel only shows and asks.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.registry.checksums import HashProgress
from console.errors import ConsoleError
from console.registry.records import VerificationReport, VersionRecord
from console.storage.timestamps import local_time
from console.units import format_parameters, format_rate, format_size
from ui.models.import_dialog import ImportDialog
from ui.widgets.record_table import record_table
from ui.adapters.registry_adapter import RegistryAdapter
from ui.models.version_details import (
    BAD_COLOUR,
    MUTED_COLOUR,
    OK_COLOUR,
    VersionDetails,
    read_only_item,
    verified_text,
)

SCHEDULE_CHECK_MS = 10 * 60 * 1000  # how often the panel looks for versions due for their scheduled re-hash
VERSION_COLUMNS = ("Model", "Version", "Format", "Size", "Precision", "Parameters", "Verified", "Registered")


class ModelsPanel(QWidget):
    load_requested = Signal(int)  # version id: the main window loads it at the model bar's precision and device
    default_changed = Signal(object)  # the default VersionRecord, or None

    def __init__(self, registry_adapter: RegistryAdapter, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = registry_adapter
        self.registry = registry_adapter.registry
        self.session = registry_adapter.session
        self._versions: list[VersionRecord] = []
        self._job_title = ""
        self._default_id: int | None = -1  # unknown until the first refresh
        self._closed = False  # after shutdown the database is closed: late signals are ignored

        actions = self._build_actions()
        self.table = record_table(VERSION_COLUMNS)
        self.table.setObjectName("versionsTable")
        self.empty_hint = QLabel("No model registered yet — import a Hugging Face folder or a GGUF file.")
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.progress_box = self._build_progress()
        self.notice = QLabel("")
        self.notice.setObjectName("registryNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setVisible(False)
        self.details = VersionDetails(self.registry, self.session)
        self._lay_out(actions)
        self._connect_actions()
        self._connect_jobs()
        self.schedule_timer = QTimer(self)
        self.schedule_timer.setInterval(SCHEDULE_CHECK_MS)
        self.schedule_timer.timeout.connect(self.run_scheduled_verification)
        self.schedule_timer.start()
        self.refresh()

    def _build_actions(self) -> QHBoxLayout:
        """The registry's buttons and the re-hash schedule, in one row."""
        self.import_folder_button = QPushButton("Import folder…")
        self.import_folder_button.setToolTip("Register a Hugging Face model folder (new model or new version)")
        self.import_gguf_button = QPushButton("Import GGUF…")
        self.import_gguf_button.setToolTip("Register a GGUF file (new model or new version)")
        self.verify_button = QPushButton("Verify now")
        self.verify_button.setToolTip("Re-hash every file of the selected version and compare with the registry")
        self.load_button = QPushButton("Load")
        self.load_button.setObjectName("primaryButton")
        self.load_button.setToolTip("Verify, then load the selected version at the model bar's precision and device")
        self.default_button = QPushButton("Set as default")
        self.retire_button = QPushButton("Retire")
        self.retire_button.setToolTip("Keep the version on record, but never load it again")
        self.export_button = QPushButton("Export manifest…")
        self.export_button.setToolTip("Save the version's paths, sizes and SHA-256 as JSON, to check another workstation")
        self.check_manifest_button = QPushButton("Check manifest…")
        self.check_manifest_button.setToolTip("Check files here against a manifest exported on another workstation")
        self.schedule = QSpinBox()
        self.schedule.setRange(0, 24 * 365)
        self.schedule.setSuffix(" h")
        self.schedule.setSpecialValueText("off")
        self.schedule.setToolTip("Fully re-hash a version when its last full check is older than this (0: off)")
        self.schedule.setValue(int(round(self.registry.verify_interval_hours(self.session.principal))))
        actions = QHBoxLayout()
        for button in (self.import_folder_button, self.import_gguf_button, self.verify_button, self.load_button,
                       self.default_button, self.retire_button, self.export_button, self.check_manifest_button):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(QLabel("Re-hash every"))
        actions.addWidget(self.schedule)
        return actions

    def _build_progress(self) -> QWidget:
        """A running job's progress: what it hashes, a bar and Cancel (hidden while no job runs)."""
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("jobProgress")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop hashing; nothing is registered or changed")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_label, 1)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        box = QWidget()
        box.setLayout(progress_row)
        box.setVisible(False)
        return box

    def _lay_out(self, actions: QHBoxLayout) -> None:
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.table, 1)
        top_layout.addWidget(self.empty_hint)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.details)
        splitter.setSizes([300, 380])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 12)
        layout.addLayout(actions)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.notice)
        layout.addWidget(splitter, 1)

    def _connect_actions(self) -> None:
        self.import_folder_button.clicked.connect(self._browse_folder)
        self.import_gguf_button.clicked.connect(self._browse_gguf)
        self.verify_button.clicked.connect(self.verify_selected)
        self.load_button.clicked.connect(self._request_load)
        self.default_button.clicked.connect(self.set_selected_default)
        self.retire_button.clicked.connect(self.retire_selected)
        self.export_button.clicked.connect(self._export_manifest)
        self.check_manifest_button.clicked.connect(self._check_manifest)
        self.details.copied.connect(lambda what: self.show_notice(f"Copied {what} to the clipboard.", "ok"))
        self.cancel_button.clicked.connect(self.jobs.cancel)
        self.schedule.valueChanged.connect(self._set_schedule)
        self.table.itemSelectionChanged.connect(self._show_selected)

    def _connect_jobs(self) -> None:
        self.jobs.job_started.connect(self._job_started)
        self.jobs.job_progress.connect(self._job_progress)
        self.jobs.job_finished.connect(self._job_finished)
        self.jobs.job_failed.connect(self._job_failed)
        self.jobs.job_cancelled.connect(self._job_cancelled)
        self.jobs.changed.connect(self.refresh)

    def apply_permissions(self, can) -> None:
        """Show the registry's actions to those who may take them (the registry checks again)."""
        for button in (self.import_folder_button, self.import_gguf_button, self.verify_button,
                       self.default_button, self.retire_button):
            button.setVisible(can(Permission.MODEL_REGISTER))
        self.load_button.setVisible(can(Permission.MODEL_LOAD))

    # --- reading the registry ----------------------------------------------------------------------------
    def refresh(self) -> None:
        if self._closed:
            return
        selected = self.selected_version()
        try:
            self._versions = self.registry.versions(self.session.principal)
        except ConsoleError as error:
            self.show_notice(str(error), "error")
            return
        self.table.setRowCount(len(self._versions))
        for row, version in enumerate(self._versions):
            name = version.model_name + ("  ★ default" if version.is_default else "")
            cells = (
                read_only_item(name, "The model loaded by default" if version.is_default else None),
                read_only_item(version.label),
                read_only_item(version.format),
                read_only_item(format_size(version.total_bytes)),
                read_only_item(version.precision or "–"),
                read_only_item(format_parameters(version.parameters), f"{version.parameters:,}" if version.parameters else None),
                read_only_item(verified_text(version), version.check_detail),
                read_only_item(f"{local_time(version.registered_at)} by {version.registered_by}"),
            )
            cells[0].setData(Qt.ItemDataRole.UserRole, version.id)
            colour = MUTED_COLOUR if version.retired else BAD_COLOUR if version.verify_state == "tampered" else OK_COLOUR
            cells[6].setForeground(QBrush(colour))
            if version.retired:
                for cell in cells:
                    cell.setForeground(QBrush(MUTED_COLOUR))
            for column, cell in enumerate(cells):
                self.table.setItem(row, column, cell)
        self.table.setVisible(bool(self._versions))
        self.empty_hint.setVisible(not self._versions)
        if selected is not None:
            self.select_version(selected.id)
        self._show_selected()
        default = next((v for v in self._versions if v.is_default), None)
        default_id = default.id if default else None
        if default_id != self._default_id:
            self._default_id = default_id
            self.default_changed.emit(default)

    def selected_version(self) -> VersionRecord | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._versions):
            return None
        return self._versions[rows[0].row()]

    def select_version(self, version_id: int) -> None:
        for row, version in enumerate(self._versions):
            if version.id == version_id:
                self.table.selectRow(row)
                return

    def _show_selected(self) -> None:
        if self._closed:
            return
        version = self.selected_version()
        has = version is not None
        active = has and not version.retired
        idle = not self.jobs.busy
        self.verify_button.setEnabled(has and idle)
        self.load_button.setEnabled(active)
        self.default_button.setEnabled(active and not version.is_default)
        self.retire_button.setEnabled(active)
        self.export_button.setEnabled(has)
        self.details.show_version(version)

    # --- actions -----------------------------------------------------------------------------------------
    def start_import(self, path: str, name: str | None = None, version: str | None = None, notes: str = "") -> bool:
        return self._started(self.jobs.import_model(path, name, version, notes))

    def verify_selected(self) -> None:
        version = self.selected_version()
        if version is not None:
            self._started(self.jobs.verify([version.id]))

    def _started(self, started: bool) -> bool:
        if not started:
            self.show_notice("Another registry job is running. Wait for it to finish, or cancel it.", "error")
        return started

    def run_scheduled_verification(self, now: datetime.datetime | None = None) -> bool:
        """Re-hash the versions whose scheduled check is due; False when none is due or a job is running."""
        if self.jobs.busy:
            return False
        try:
            due = self.registry.due_for_full_check(self.session.principal, now)
        except ConsoleError as error:
            self.show_notice(str(error), "error")
            return False
        return bool(due) and self.jobs.verify([version.id for version in due])

    def register_embedded_default(self) -> bool:
        """First start: hash and register the embedded model in the background (nothing if done before)."""
        from console.registry.default_model import EMBEDDED_REGISTERED_KEY

        if self.registry.setting(self.session.principal, EMBEDDED_REGISTERED_KEY) is not None:
            return False
        return self.jobs.register_default()

    def set_selected_default(self) -> None:
        version = self.selected_version()
        if version is None:
            return
        try:
            self.registry.set_default(self.session.principal, version.id)
        except ConsoleError as error:
            self.show_notice(str(error), "error")
            return
        self.show_notice(f"{version.ref} is now the default model: the model bar's default entry loads it.", "ok")
        self.refresh()

    def retire_selected(self) -> None:
        version = self.selected_version()
        if version is None:
            return
        answer = QMessageBox.question(
            self, "Retire version",
            f"Retire {version.ref}? It stays on record with its history, but can no longer be loaded.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.registry.retire(self.session.principal, version.id)
        except ConsoleError as error:
            self.show_notice(str(error), "error")
            return
        self.show_notice(f"{version.ref} is retired.", "ok")
        self.refresh()

    def export_manifest_to(self, destination: str) -> None:
        version = self.selected_version()
        if version is None:
            return
        try:
            written = self.registry.write_manifest(self.session.principal, version.id, Path(destination))
        except ConsoleError as error:
            self.show_notice(str(error), "error")
            return
        self.show_notice(f"Saved the manifest of {version.ref} to {written}.", "ok")

    def check_manifest_file(self, manifest_path: str, local_path: str | None = None) -> bool:
        from console.registry.manifests import read_manifest

        try:
            manifest = read_manifest(Path(manifest_path))
        except ConsoleError as error:
            self.show_notice(str(error), "error")
            return False
        return self._started(self.jobs.check_manifest(manifest, local_path))

    def show_notice(self, message: str, state: str = "") -> None:
        prefix = {"error": "⚠ ", "ok": "✓ "}.get(state, "")
        self.notice.setText(f"{prefix}{message}" if message else "")
        self.notice.setProperty("state", state)
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        self.notice.setVisible(bool(message))

    def shutdown(self) -> None:
        self._closed = True
        self.schedule_timer.stop()
        self.jobs.shutdown()

    # --- dialogs -----------------------------------------------------------------------------------------
    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder to import")
        if path:
            self._ask_and_import(path)

    def _browse_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF file to import", "", "GGUF models (*.gguf);;All files (*)")
        if path:
            self._ask_and_import(path)

    def _ask_and_import(self, path: str) -> None:
        dialog = ImportDialog(self.registry, self.session, path, self)
        if dialog.exec():
            name, version, notes = dialog.values()
            self.start_import(path, name, version, notes)

    def _export_manifest(self) -> None:
        version = self.selected_version()
        if version is None:
            return
        suggested = f"{version.model_name}-{version.label}.manifest.json"
        path, _ = QFileDialog.getSaveFileName(self, "Save the manifest", suggested, "Manifests (*.json)")
        if path:
            self.export_manifest_to(path)

    def _check_manifest(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a manifest to check against", "", "Manifests (*.json)")
        if not path:
            return
        from console.registry.manifests import read_manifest

        try:
            manifest = read_manifest(Path(path))
        except ConsoleError as error:
            self.show_notice(str(error), "error")
            return
        local = None
        if not Path(manifest.source_path).exists():
            local = QFileDialog.getExistingDirectory(self, f"Where are the files of {manifest.ref} on this workstation?")
            if not local:
                return
        self.check_manifest_file(path, local)

    # --- job reports -------------------------------------------------------------------------------------
    def _job_started(self, _kind: str, title: str) -> None:
        self._job_title = title
        self.progress.setValue(0)
        self.progress_label.setText(f"{title}…")
        self.progress_box.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.show_notice("")
        self._set_idle(False)

    def _job_progress(self, step: HashProgress) -> None:
        self.progress.setValue(int(step.fraction * 1000))
        current = f" · {step.current_file}" if step.current_file else ""
        self.progress_label.setText(
            f"{self._job_title}{current} · {format_size(step.done_bytes)} of {format_size(step.total_bytes)} · "
            f"{format_rate(step.bytes_per_second)}"
        )

    def _job_finished(self, kind: str, result) -> None:
        self._job_done()
        if kind == "import":
            version: VersionRecord = result
            self.refresh()
            self.select_version(version.id)
            self.show_notice(
                f"Registered {version.ref}: {version.file_count} files, {format_size(version.total_bytes)}, "
                f"checksum {version.checksum[:16]}…", "ok")
        elif kind == "register-default" and result is not None:
            self.show_notice(f"Registered the embedded model {result.ref} and made it the default.", "ok")
        elif kind == "verify":
            self._show_verification(result)
        elif kind == "check-manifest":
            self._show_manifest_check(result)

    def _show_verification(self, reports: list[VerificationReport]) -> None:
        failed = [report for report in reports if not report.ok]
        if failed:
            lines = [f"{report.version.ref} failed verification: " + "; ".join(p.describe() for p in report.problems)
                     for report in failed]
            self.show_notice(" ".join(lines) + " It will not load until its files are restored.", "error")
        elif len(reports) == 1:
            version = reports[0].version
            self.show_notice(f"{version.ref}: all {version.file_count} files match their SHA-256.", "ok")
        else:
            self.show_notice(f"{len(reports)} versions verified: every file matches.", "ok")

    def _show_manifest_check(self, check) -> None:
        origin = f" from {check.manifest.exported_from}" if check.manifest.exported_from else ""
        if check.ok:
            registered = f" (registered here as {check.registered_as.ref})" if check.registered_as else ""
            self.show_notice(f"{check.checked_path} matches the manifest of {check.manifest.ref}{origin}: "
                             f"{len(check.manifest.files)} files{registered}.", "ok")
        else:
            details = "; ".join(problem.describe() for problem in check.problems)
            self.show_notice(f"{check.checked_path} does not match {check.manifest.ref}{origin}: {details}.", "error")

    def _job_failed(self, _kind: str, message: str) -> None:
        self._job_done()
        self.show_notice(message, "error")

    def _job_cancelled(self, _kind: str, message: str) -> None:
        self._job_done()
        self.show_notice(message, "")

    def _job_done(self) -> None:
        self.progress_box.setVisible(False)
        self._set_idle(True)

    def _set_idle(self, idle: bool) -> None:
        for button in (self.import_folder_button, self.import_gguf_button, self.check_manifest_button):
            button.setEnabled(idle)
        self._show_selected()
        if not idle:
            self.verify_button.setEnabled(False)

    def _request_load(self) -> None:
        version = self.selected_version()
        if version is not None and not version.retired:
            self.load_requested.emit(version.id)

    def _set_schedule(self, hours: int) -> None:
        try:
            self.registry.set_verify_interval(self.session.principal, hours)
        except ConsoleError as error:
            self.show_notice(str(error), "error")
