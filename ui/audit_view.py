"""The audit view: the log with filters, a check of its hash chain, and CSV export (`audit:view`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.errors import ConsoleError
from console.timestamps import local_time
from ui.users_view import _table


class AuditView(QWidget):
    COLUMNS = ["#", "Time", "User", "Action", "Target", "Outcome", "Details"]

    def __init__(self, core, parent: QWidget | None = None):
        super().__init__(parent)
        self.core = core
        self.denied = QLabel("You do not have permission to see the audit log. Ask an administrator.")
        self.denied.setObjectName("emptyHint")
        self.actor = QLineEdit()
        self.actor.setPlaceholderText("user")
        self.action = QLineEdit()
        self.action.setPlaceholderText("action prefix, e.g. auth. or model.load")
        self.outcome = QComboBox()
        self.outcome.addItems(["any outcome", "ok", "denied", "failed"])
        self.since = QDateEdit(QDate.currentDate().addDays(-30))
        self.since.setCalendarPopup(True)
        self.since.setDisplayFormat("yyyy-MM-dd")
        self.refresh_button = QPushButton("Refresh")
        self.verify_button = QPushButton("Verify chain")
        self.export_button = QPushButton("Export CSV…")
        self.verdict = QLabel("")
        self.verdict.setObjectName("auditVerdict")
        self.verdict.setWordWrap(True)
        self.table = _table(self.COLUMNS)
        filters = QHBoxLayout()
        for label, widget in (("User", self.actor), ("Action", self.action), ("Outcome", self.outcome), ("Since", self.since)):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addWidget(self.denied)
        layout.addWidget(self.content, 1)
        self.refresh_button.clicked.connect(self.refresh)
        for field in (self.actor, self.action):
            field.returnPressed.connect(self.refresh)
        self.outcome.currentIndexChanged.connect(self.refresh)
        self.verify_button.clicked.connect(self.verify)
        self.export_button.clicked.connect(self._export_clicked)
        self.refresh_for_session()

    def refresh_for_session(self) -> None:
        allowed = self.core.can("audit:view")
        self.denied.setVisible(not allowed)
        self.content.setVisible(allowed)
        if allowed:
            self.refresh()

    def filters(self) -> dict:
        outcome = self.outcome.currentText()
        return {"actor": self.actor.text().strip() or None, "action": self.action.text().strip() or None,
                "outcome": None if outcome == "any outcome" else outcome,
                "since": self.since.date().toString("yyyy-MM-dd")}

    def refresh(self) -> None:
        entries = self.core.audit_entries(**self.filters(), limit=2000)
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            values = (str(entry.seq), local_time(entry.at), entry.actor, entry.action, entry.target, entry.outcome, entry.details)
            for column, text in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(text))

    def verify(self) -> None:
        result = self.core.verify_audit()
        if result.ok:
            self.verdict.setText(f"✔ The audit log is intact: {result.entries} entries, every hash and link checks out.")
            self.verdict.setProperty("state", "ok")
        else:
            self.verdict.setText(f"⚠ The audit log was tampered with: {result.problem}.")
            self.verdict.setProperty("state", "error")
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)

    def export_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.core.audit.to_csv(self.core.audit_entries(**self.filters(), limit=1_000_000)), encoding="utf-8")
        return path

    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the audit log", "audit.csv", "CSV files (*.csv)")
        if path:
            try:
                self.verdict.setText(f"Wrote {self.export_csv(path)}")
            except (OSError, ConsoleError) as error:
                self.verdict.setText(f"⚠ Could not export: {error}")
