"""The dashboard's Prometheus box: a switch for the /metrics endpoint on 127.0.0.1, its port, and what it
serves (its URL) or why it cannot (a taken port)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from console.telemetry.errors import TelemetryError
from console.telemetry.prometheus_exporter import DEFAULT_HOST, DEFAULT_PORT
from ui.adapters.telemetry_adapter import TelemetryAdapter


class PrometheusSwitch(QGroupBox):
    def __init__(self, telemetry: TelemetryAdapter, parent: QWidget | None = None):
        super().__init__("Prometheus", parent)
        self.telemetry = telemetry
        self.check = QCheckBox(f"Serve /metrics on {DEFAULT_HOST}")
        self.check.setToolTip("An HTTP endpoint Prometheus can scrape (the README has a scrape config)")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1024, 65535)
        self.port_spin.setValue(DEFAULT_PORT)
        self.status = QLabel("Off")
        self.status.setObjectName("prometheusStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(QLabel("Port"))
        row.addWidget(self.port_spin)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.check)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.check.toggled.connect(self._toggle)
        self.port_spin.editingFinished.connect(self._port_changed)
        telemetry.prometheus_changed.connect(self._show)

    def _toggle(self, enabled: bool) -> None:
        if not enabled:
            self.telemetry.stop_prometheus()
            return
        try:
            self.telemetry.start_prometheus(self.port_spin.value())
        except TelemetryError:  # the adapter reported why; the switch goes back off
            self.check.blockSignals(True)
            self.check.setChecked(False)
            self.check.blockSignals(False)

    def _port_changed(self) -> None:
        exporter = self.telemetry.exporter
        if self.check.isChecked() and exporter is not None and exporter.port != self.port_spin.value():
            self._toggle(True)

    def _show(self, serving: bool, detail: str) -> None:
        if serving:
            self.status.setText(f"Serving {detail}")
            state = "ok"
        else:
            self.status.setText(f"⚠ {detail}" if detail else "Off")
            state = "error" if detail else ""
        self.status.setProperty("state", state)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
