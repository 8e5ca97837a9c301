"""The dashboard's alert box: the alert log (newest first, firing in red, resolved in green), how many alerts
fire now, and the button that opens the rules editor."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from console.telemetry.alerts import AlertEvent
from ui.telemetry.alert_rules_editor import AlertRulesEditor
from ui.adapters.telemetry_adapter import TelemetryAdapter

LOG_LIMIT = 500


class AlertLogView(QGroupBox):
    def __init__(self, telemetry: TelemetryAdapter, parent: QWidget | None = None):
        super().__init__("Alerts", parent)
        self.telemetry = telemetry
        self.alert_list = QListWidget()
        self.alert_list.setObjectName("alertLog")
        self.alert_list.setWordWrap(True)
        self.active_label = QLabel("")
        self.active_label.setObjectName("activeAlerts")
        self.edit_rules_button = QPushButton("Edit rules…")
        self.edit_rules_button.setToolTip("Thresholds, durations and advice of the alert rules")
        side = QVBoxLayout()
        side.addWidget(self.active_label)
        side.addWidget(self.edit_rules_button)
        side.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.alert_list, 1)
        layout.addLayout(side)

        self.edit_rules_button.clicked.connect(self.edit_rules)
        telemetry.alert.connect(self.add_alert)
        for event in telemetry.service.alert_log.events()[-LOG_LIMIT:]:  # alerts from before the dashboard opened
            self.add_alert(event)
        self._refresh()

    def edit_rules(self) -> AlertRulesEditor:
        editor = AlertRulesEditor(self.telemetry, self)
        editor.finished.connect(lambda _result: self._refresh())
        editor.open()
        return editor

    def add_alert(self, event: AlertEvent) -> None:
        if self._showing_hint():
            self.alert_list.clear()
        stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
        item = QListWidgetItem(f"{stamp}  {'⚠' if event.firing else '✓'} {event.text}")
        item.setForeground(QColor("#b3261e" if event.firing else "#1e7a3c"))
        item.setData(Qt.ItemDataRole.UserRole, event.state)
        self.alert_list.insertItem(0, item)  # newest on top
        while self.alert_list.count() > LOG_LIMIT:
            self.alert_list.takeItem(self.alert_list.count() - 1)
        self._refresh()

    def _refresh(self) -> None:
        alerts = self.telemetry.service.alerts
        active, rules = alerts.active(), alerts.rules
        enabled = sum(rule.enabled for rule in rules)
        if active:
            self.active_label.setText(f"<b style='color:#b3261e'>{len(active)} firing now</b><br>{enabled} rules on")
        else:
            self.active_label.setText(f"Nothing firing<br>{enabled} of {len(rules)} rules on")
        if not self.alert_list.count() or self._showing_hint():
            self.alert_list.clear()
            watching = "; ".join(rule.describe() for rule in rules if rule.enabled) or "no rule is on"
            hint = QListWidgetItem(f"No alerts yet. Watching: {watching}.")
            hint.setForeground(QColor("#7a8390"))
            self.alert_list.addItem(hint)

    def _showing_hint(self) -> bool:
        return self.alert_list.count() == 1 and self.alert_list.item(0).data(Qt.ItemDataRole.UserRole) is None
