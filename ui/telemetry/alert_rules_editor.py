"""The alert rules editor: one table row per rule (on/off, name, metric, comparison, threshold, consecutive
samples, condition, advice). Apply hands the rules to the telemetry service, which validates them; a refused
rule's message shows here and the rules in force stay as they were."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.errors import ConsoleError
from console.telemetry.alerts import ALERT_METRICS, CONDITIONS, DEFAULT_RULES, AlertRule
from console.telemetry.errors import InvalidAlertRule
from ui.adapters.telemetry_adapter import TelemetryAdapter

COLUMNS = ("On", "Name", "Metric", "", "Threshold", "For samples", "Only", "Advice shown when it fires")
ALWAYS = "always"


class AlertRulesEditor(QDialog):
    def __init__(self, telemetry: TelemetryAdapter, parent: QWidget | None = None):
        super().__init__(parent)
        self.telemetry = telemetry
        self.setWindowTitle("Alert rules")
        self.resize(1040, 340)

        hint = QLabel("An alert fires when its metric passes the threshold for that many consecutive samples, "
                      "and resolves at the first sample that does not. GPU rules are judged per GPU.")
        hint.setObjectName("dialogHint")
        hint.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.error = QLabel("")
        self.error.setObjectName("chatNotice")
        self.error.setWordWrap(True)

        self.add_button = QPushButton("Add rule")
        self.remove_button = QPushButton("Remove rule")
        self.defaults_button = QPushButton("Restore defaults")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Cancel
        )
        row = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.defaults_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.error)
        layout.addLayout(row)

        self.add_button.clicked.connect(lambda: self.add_row(AlertRule("New rule", "gpu_utilization_percent", ">", 90, 3)))
        self.remove_button.clicked.connect(self._remove_selected)
        self.defaults_button.clicked.connect(lambda: self.show_rules(DEFAULT_RULES))
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        self.buttons.accepted.connect(self._apply_and_close)
        self.buttons.rejected.connect(self.reject)
        self.show_rules(telemetry.service.alerts.rules)

    # --- rows <-> rules ----------------------------------------------------------------------------------
    def show_rules(self, rules) -> None:
        self.table.setRowCount(0)
        for rule in rules:
            self.add_row(rule)
        self.error.setText("")

    def add_row(self, rule: AlertRule) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        enabled = QCheckBox()
        enabled.setChecked(rule.enabled)
        enabled.setToolTip("Evaluate this rule")
        self.table.setCellWidget(row, 0, _centered(enabled))
        self.table.setItem(row, 1, QTableWidgetItem(rule.name))
        metric = QComboBox()
        for key, spec in ALERT_METRICS.items():
            metric.addItem(f"{spec.label} ({spec.unit})" if spec.unit else spec.label, key)
        metric.setCurrentIndex(max(0, metric.findData(rule.metric)))
        self.table.setCellWidget(row, 2, metric)
        comparison = QComboBox()
        comparison.addItem("above", ">")
        comparison.addItem("below", "<")
        comparison.setCurrentIndex(max(0, comparison.findData(rule.comparison)))
        self.table.setCellWidget(row, 3, comparison)
        threshold = QDoubleSpinBox()
        threshold.setRange(-1e9, 1e9)
        threshold.setDecimals(1)
        threshold.setValue(rule.threshold)
        self.table.setCellWidget(row, 4, threshold)
        samples = QSpinBox()
        samples.setRange(1, 3600)
        samples.setValue(rule.consecutive_samples)
        self.table.setCellWidget(row, 5, samples)
        condition = QComboBox()
        condition.addItem(ALWAYS, None)
        for key, (label, _check) in CONDITIONS.items():
            condition.addItem(label, key)
        condition.setCurrentIndex(max(0, condition.findData(rule.condition)))
        self.table.setCellWidget(row, 6, condition)
        self.table.setItem(row, 7, QTableWidgetItem(rule.message))

    def rules(self) -> list[AlertRule]:
        """The rules as the table shows them (not validated yet)."""
        rules = []
        for row in range(self.table.rowCount()):
            cell = self.table.cellWidget
            rules.append(AlertRule(
                name=(self.table.item(row, 1).text() if self.table.item(row, 1) else "").strip(),
                metric=cell(row, 2).currentData(),
                comparison=cell(row, 3).currentData(),
                threshold=cell(row, 4).value(),
                consecutive_samples=cell(row, 5).value(),
                condition=cell(row, 6).currentData(),
                message=(self.table.item(row, 7).text() if self.table.item(row, 7) else "").strip(),
                enabled=cell(row, 0).findChild(QCheckBox).isChecked(),
            ))
        return rules

    # --- actions -------------------------------------------------------------------------------------------
    def apply(self) -> bool:
        try:
            self.telemetry.set_rules(self.rules())
        except (InvalidAlertRule, ConsoleError) as error:  # ConsoleError: e.g. no permission to store them
            self.error.setText(f"⚠ {error}")
            return False
        self.error.setText("")
        return True

    def _apply_and_close(self) -> None:
        if self.apply():
            self.accept()

    def _remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True)
        if not rows and self.table.currentRow() >= 0:
            rows = [self.table.currentRow()]
        for row in rows:
            self.table.removeRow(row)


def _centered(widget: QWidget) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setAlignment(Qt.AlignmentFlag.AlignCenter)
    layout.addWidget(widget)
    return holder
