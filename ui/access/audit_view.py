"""The audit view: the log with filters, a check of its hash chain, and CSV export (`audit:view`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDate, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.errors import ConsoleError
from console.storage.timestamps import local_time
from ui.widgets.record_table import fill, record_table
from ui.access.desktop_session import DesktopSession
from console.access.audit_log import AuditLog, printable

REFUSED_COLOUR = QColor("#b3261e")
SHOWN_LIMIT = 2000  # rows in the table; the CSV export has no limit
FOLLOW_MS = 2000  # how often a shown log looks for new entries (one indexed query for entries after the newest)


class AuditView(QWidget):
    COLUMNS = ["#", "Time", "User", "Action", "Target", "Outcome", "Details"]

    def __init__(self, session: DesktopSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.core = session, session.core
        self.denied = QLabel("You do not have permission to see the audit log. Ask an administrator.")
        self.denied.setObjectName("emptyHint")
        self.denied.setWordWrap(True)
        self.denied.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.actor = QLineEdit()
        self.actor.setPlaceholderText("any user")
        self.actor.setClearButtonEnabled(True)
        self.actor.setFixedWidth(130)
        self.action = QLineEdit()
        self.action.setPlaceholderText("any action, or a prefix: auth.")
        self.action.setToolTip("Actions starting with this text, e.g. auth. (sign-ins), settings., user., model.load")
        self.action.setClearButtonEnabled(True)
        self.action.setFixedWidth(220)
        self.outcome = QComboBox()
        self.outcome.addItems(["any outcome", "ok", "denied", "failed"])
        self.since = QDateEdit(QDate.currentDate().addDays(-30))
        self.since.setCalendarPopup(True)
        self.since.setDisplayFormat("yyyy-MM-dd")
        self.since.setToolTip("Entries from this day on (UTC)")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the log again with these filters (F5)")
        self.refresh_button.setShortcut("F5")
        self.verify_button = QPushButton("Verify chain")
        self.verify_button.setToolTip("Recompute every entry's SHA-256 link and report the first one that was changed")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Save the entries that match the filters as a CSV file")
        self.verdict = QLabel("")
        self.verdict.setObjectName("auditVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.setVisible(False)
        self.count = QLabel("")
        self.count.setObjectName("dialogHint")
        self.table = record_table(self.COLUMNS)
        filters = QHBoxLayout()
        for label, widget in (("User", self.actor), ("Action", self.action), ("Outcome", self.outcome), ("Since", self.since)):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
            filters.addSpacing(6)
        filters.addWidget(self.refresh_button)
        filters.addStretch(1)
        filters.addWidget(self.verify_button)
        filters.addWidget(self.export_button)
        self.content = QWidget()
        content = QVBoxLayout(self.content)
        content.setContentsMargins(0, 0, 0, 0)
        content.addLayout(filters)
        content.addWidget(self.verdict)
        content.addWidget(self.table, 1)
        content.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addWidget(self.denied)
        layout.addWidget(self.content, 1)
        self.refresh_button.clicked.connect(self.refresh)
        for field in (self.actor, self.action):
            field.returnPressed.connect(self.refresh)
        self.outcome.currentIndexChanged.connect(self.refresh)
        self.since.dateChanged.connect(self.refresh)
        self._newest_seq = 0  # the newest entry shown: the follow timer asks only for entries after it
        self.follow_timer = QTimer(self)
        self.follow_timer.setInterval(FOLLOW_MS)
        self.follow_timer.timeout.connect(self.follow)
        self.follow_timer.start()
        self.verify_button.clicked.connect(self.verify)
        self.export_button.clicked.connect(self._export_clicked)
        self.refresh_for_session()

    def refresh_for_session(self) -> None:
        """Show the log, or the permission message, for the signed-in user (call after sign-in or switch)."""
        allowed = self.session.can(Permission.AUDIT_VIEW)
        self.denied.setVisible(not allowed)
        self.content.setVisible(allowed)
        self.verdict.setVisible(False)
        if allowed:
            self.refresh()
        else:
            self.table.setRowCount(0)  # nothing of the previous user's view stays behind a user switch

    def filters(self) -> dict:
        outcome = self.outcome.currentText()
        return {"actor": self.actor.text().strip() or None, "action": self.action.text().strip() or None,
                "outcome": None if outcome == "any outcome" else outcome,
                "since": self.since.date().toString("yyyy-MM-dd")}

    def refresh(self) -> None:
        try:
            entries = self.core.audit_entries(self.session.principal, **self.filters(), limit=SHOWN_LIMIT)
        except ConsoleError as error:
            self._show_verdict(str(error), "error")
            return
        self._newest_seq = max((e.seq for e in entries), default=self._newest_seq)
        fill(self.table, [(str(e.seq), local_time(e.at), printable(e.actor), printable(e.action), printable(e.target),
                           e.outcome, printable(e.details, 2000)) for e in entries])
        for row, entry in enumerate(entries):
            if entry.outcome != "ok":  # refusals and failures stand out, in the app's error red
                self.table.item(row, self.COLUMNS.index("Outcome")).setForeground(REFUSED_COLOUR)
        shown = len(entries)
        self.count.setText("No entries match these filters." if not shown else
                           f"{shown} entr{'y' if shown == 1 else 'ies'}, newest first"
                           + (f" (the newest {SHOWN_LIMIT}; Export CSV has them all)" if shown == SHOWN_LIMIT else "")
                           + ". Times are local.")

    def follow(self) -> bool:
        """While shown: read the log again when entries matching the filters were written since the last read
        (by this window, a CLI command or the API). True when it refreshed."""
        if not self.isVisible():
            return False
        try:
            if not self.session.can(Permission.AUDIT_VIEW):
                return False
            newer = self.core.audit_entries(self.session.principal, **self.filters(), after_seq=self._newest_seq,
                                            limit=1)
        except ConsoleError:  # the database is busy or closing: the next tick tries again
            return False
        if newer:
            self.refresh()
        return bool(newer)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if self.session.principal is not None and self.content.isVisible():
            self.refresh()

    def verify(self) -> bool:
        try:
            result = self.core.verify_audit(self.session.principal)
        except ConsoleError as error:
            self._show_verdict(str(error), "error")
            return False
        if result.ok:
            self._show_verdict(f"✔ Chain intact: {result.entries} entries; every hash and link checks out.", "ok")
        else:
            self._show_verdict(f"⚠ The audit log was tampered with at entry {result.first_bad_seq}: {result.problem}.",
                               "error")
        return result.ok

    def _show_verdict(self, text: str, state: str) -> None:
        self.verdict.setText(text)
        self.verdict.setProperty("state", state)
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)
        self.verdict.setVisible(True)

    def export_csv(self, path: str | Path) -> Path:
        """Write the entries that match the filters (all of them, oldest first) to `path` as CSV."""
        path = Path(path)
        entries = self.core.audit_entries(self.session.principal, **self.filters(), limit=1_000_000)
        path.write_text(AuditLog.to_csv(entries), encoding="utf-8")
        return path

    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the audit log", "audit.csv", "CSV files (*.csv)")
        if path:
            try:
                self._show_verdict(f"Wrote the matching entries to {self.export_csv(path)}.", "")
            except (OSError, ConsoleError) as error:
                self._show_verdict(f"⚠ Could not export: {error}", "error")
