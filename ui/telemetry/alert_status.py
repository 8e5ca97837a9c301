"""The status bar's alert indicator: the newest firing alert (all of them in the tooltip), or "No alerts".
Clicking it opens the telemetry dashboard, where the alert log is."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QLabel, QWidget

from ui.adapters.telemetry_adapter import TelemetryAdapter

MAX_WIDTH = 560


class AlertStatus(QLabel):
    clicked = Signal()

    def __init__(self, telemetry: TelemetryAdapter, parent: QWidget | None = None):
        super().__init__(parent)
        self.telemetry = telemetry
        self.setObjectName("alertStatus")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setMaximumWidth(MAX_WIDTH)
        telemetry.alert.connect(self.refresh)
        self.refresh()

    def refresh(self, _event=None) -> None:
        active = self.telemetry.service.alerts.active()
        self.setProperty("state", "firing" if active else "ok")
        self.style().unpolish(self)
        self.style().polish(self)
        if not active:
            self.setText("No alerts")
            self.setToolTip("Alert rules are evaluated on every telemetry sample; see the Telemetry tab.")
            return
        newest = active[-1]
        prefix = f"⚠ {len(active)} alerts · " if len(active) > 1 else "⚠ "
        self.setText(self.fontMetrics().elidedText(prefix + newest.text, Qt.TextElideMode.ElideRight, MAX_WIDTH - 12))
        self.setToolTip("<br>".join(html.escape(event.text) for event in active))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        self.clicked.emit()
        super().mousePressEvent(event)
