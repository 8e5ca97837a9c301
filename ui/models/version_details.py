"""The Models tab's detail pane for one version: its facts, its files with their SHA-256 (one click copies
one), its load history and its checks. Reads the registry; changes nothing.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from console.registry.service import RegistryService
from ui.access.desktop_session import DesktopSession
from console.registry.records import VersionRecord
from console.storage.timestamps import local_time
from console.units import format_parameters, format_size
from ui.widgets.record_table import record_table

OK_COLOUR, BAD_COLOUR, MUTED_COLOUR = QColor("#1e7a3c"), QColor("#b3261e"), QColor("#7a8390")
NOTHING_SELECTED = "Select a version to see its files and history."


def verified_text(version: VersionRecord) -> str:
    if version.retired:
        return f"retired {local_time(version.retired_at)}"
    when = f"{local_time(version.last_checked_at)} ({version.last_check_kind or '–'})"
    return f"⚠ tampered · {when}" if version.verify_state == "tampered" else f"✓ verified · {when}"


def read_only_item(text: str, tooltip: str | None = None, colour: QColor | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if tooltip:
        item.setToolTip(tooltip)
    if colour is not None:
        item.setForeground(QBrush(colour))
    return item


def fill_row(table: QTableWidget, row: int, items: tuple[QTableWidgetItem, ...]) -> None:
    for column, item in enumerate(items):
        table.setItem(row, column, item)


class VersionDetails(QWidget):
    copied = Signal(str)  # what was copied to the clipboard, for the panel's notice

    def __init__(self, registry: RegistryService, session: DesktopSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.registry = registry
        self.session = session
        self.version: VersionRecord | None = None
        self.title = QLabel(NOTHING_SELECTED)
        self.title.setObjectName("detailTitle")
        self.source = QLabel("")
        self.checksum = QLabel("")
        self.checksum.setObjectName("checksum")
        self.state = QLabel("")
        self.notes = QLabel("")
        for label in (self.source, self.checksum, self.state, self.notes):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
        self.copy_checksum_button = QPushButton("Copy checksum")
        self.copy_checksum_button.setToolTip("Copy the version's SHA-256 (over all its files) to the clipboard")
        self.copy_checksum_button.setEnabled(False)
        checksum_row = QHBoxLayout()
        checksum_row.addWidget(self.checksum, 1)
        checksum_row.addWidget(self.copy_checksum_button)
        facts = QFormLayout()
        facts.addRow("Source", self.source)
        facts.addRow("Checksum", checksum_row)
        facts.addRow("Last check", self.state)
        facts.addRow("Notes", self.notes)

        self.files_table = record_table(("Path", "Size", "SHA-256", ""))
        self.files_table.setObjectName("filesTable")
        self.files_table.horizontalHeader().setStretchLastSection(False)
        self.files_table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.history_table = record_table(("When", "Outcome", "Precision", "Device", "Load time", "By", "Detail"))
        self.checks_table = record_table(("When", "Kind", "Result", "By", "Detail"))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.files_table, "Files")
        self.tabs.addTab(self.history_table, "Load history")
        self.tabs.addTab(self.checks_table, "Checks")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(facts)
        layout.addWidget(self.tabs, 1)
        self.copy_checksum_button.clicked.connect(self.copy_version_checksum)

    def show_version(self, version: VersionRecord | None) -> None:
        self.version = version
        self.copy_checksum_button.setEnabled(version is not None)
        if version is None:
            self.title.setText(NOTHING_SELECTED)
            for label in (self.source, self.checksum, self.state, self.notes):
                label.setText("")
            for table in (self.files_table, self.history_table, self.checks_table):
                table.setRowCount(0)
            return
        self.title.setText(
            f"<b>{version.ref}</b> · {version.format} · {version.architecture or '–'} · "
            f"{format_parameters(version.parameters)} parameters · {version.precision or '–'} · "
            f"{version.file_count} files, {format_size(version.total_bytes)}"
            + (" · <b>default</b>" if version.is_default else "")
        )
        self.source.setText(version.source_path)
        self.checksum.setText(version.checksum)
        self.state.setText(f"{verified_text(version)} — {version.check_detail or ''}")
        self.notes.setText(version.notes or "–")
        self._fill_files(version)
        self._fill_history(version)
        self._fill_checks(version)

    def copy_version_checksum(self) -> None:
        if self.version is not None:
            self._copy(self.version.checksum, f"the checksum of {self.version.ref}")

    def _fill_files(self, version: VersionRecord) -> None:
        files = self.registry.files(self.session.principal, version.id)
        monospace = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.files_table.setRowCount(len(files))
        for row, record in enumerate(files):
            sha = read_only_item(record.sha256)
            sha.setFont(monospace)
            fill_row(self.files_table, row, (read_only_item(record.path),
                                             read_only_item(format_size(record.size), f"{record.size:,} bytes"), sha))
            copy = QPushButton("Copy")
            copy.setToolTip(f"Copy the SHA-256 of {record.path}")
            copy.clicked.connect(lambda _checked=False, r=record: self._copy(r.sha256, f"the SHA-256 of {r.path}"))
            self.files_table.setCellWidget(row, 3, copy)

    def _fill_history(self, version: VersionRecord) -> None:
        events = self.registry.load_history(self.session.principal, version.id)
        self.history_table.setRowCount(len(events))
        for row, event in enumerate(events):
            fill_row(self.history_table, row, (
                read_only_item(local_time(event.loaded_at), event.loaded_at),
                read_only_item(event.outcome, colour=OK_COLOUR if event.outcome == "loaded" else BAD_COLOUR),
                read_only_item(event.precision or "–"),
                read_only_item(event.device or "–"),
                read_only_item(f"{event.load_seconds:.1f} s" if event.load_seconds is not None else "–"),
                read_only_item(event.loaded_by or "–"),
                read_only_item(event.detail or "", event.detail),
            ))

    def _fill_checks(self, version: VersionRecord) -> None:
        checks = self.registry.verification_history(self.session.principal, version.id)
        self.checks_table.setRowCount(len(checks))
        for row, check in enumerate(checks):
            fill_row(self.checks_table, row, (
                read_only_item(local_time(check["checked_at"]), check["checked_at"]),
                read_only_item(check["kind"]),
                read_only_item("match" if check["ok"] else "MISMATCH", colour=OK_COLOUR if check["ok"] else BAD_COLOUR),
                read_only_item(check["checked_by"] or "–"),
                read_only_item(check["detail"] or "", check["detail"]),
            ))

    def _copy(self, text: str, what: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.copied.emit(what)
