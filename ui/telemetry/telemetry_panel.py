"""The telemetry dashboard: live charts of engine, GPU and system figures with their current values, pause,
time window, sampling interval, CSV and PNG export, the Prometheus switch, and the alert log.

Sampling runs on the service's thread whatever this panel does; a QTimer redraws at 10 Hz from the ring
buffers, only charts that are on screen and only when a sample arrived. Pause stops redrawing, not sampling.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from console.telemetry.csv_export import export_csv
from console.telemetry.errors import TelemetryError, TelemetryExportFailed
from ui.telemetry.alert_log_view import AlertLogView
from ui.telemetry.prometheus_switch import PrometheusSwitch
from ui.adapters.telemetry_adapter import TelemetryAdapter
from ui.telemetry.telemetry_charts import InfoCard, TelemetryChart, chart_specs

WINDOWS = (("1 min", 60.0), ("10 min", 600.0), ("1 h", 3600.0))
INTERVALS = (("100 ms", 0.1), ("250 ms", 0.25), ("500 ms", 0.5), ("1 s", 1.0), ("2 s", 2.0), ("5 s", 5.0))
COLUMNS = 3


class TelemetryPanel(QWidget):
    REFRESH_MS = 100  # 10 Hz

    def __init__(self, telemetry: TelemetryAdapter, parent: QWidget | None = None):
        super().__init__(parent)
        self.telemetry = telemetry
        self.service = telemetry.service
        self.paused = False
        self.window_s = WINDOWS[0][1]

        toolbar = self._build_toolbar()
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self._build_charts())
        self.scroll.setObjectName("telemetryScroll")
        self.scroll.verticalScrollBar().valueChanged.connect(lambda _value: self.redraw())
        self.save_png_button.setMenu(self._build_save_menu())
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.scroll)
        splitter.addWidget(self._build_alerts_and_prometheus(telemetry))
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([640, 120])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(6)
        layout.addLayout(toolbar)
        layout.addWidget(splitter, 1)

        self.pause_button.toggled.connect(self.set_paused)
        self.window_combo.currentIndexChanged.connect(lambda _i: self.set_window(self.window_combo.currentData()))
        self.interval_combo.currentIndexChanged.connect(lambda _i: self._set_interval(self.interval_combo.currentData()))
        self.export_csv_button.clicked.connect(self._ask_export_csv)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.redraw)
        self.timer.start(self.REFRESH_MS)

    def _build_toolbar(self) -> QHBoxLayout:
        """Pause, time window, sampling interval, CSV and PNG export, and what state the charts are in."""
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Freeze the charts; sampling and alerts go on")
        self.window_combo = QComboBox()
        for label, seconds in WINDOWS:
            self.window_combo.addItem(label, seconds)
        self.window_combo.setToolTip("How much history the charts show (an hour is buffered)")
        self.interval_combo = QComboBox()
        for label, seconds in INTERVALS:
            self.interval_combo.addItem(label, seconds)
        self.interval_combo.setCurrentIndex(max(0, self.interval_combo.findData(self.service.interval_s)))
        self.interval_combo.setToolTip("How often GPU, system and engine figures are sampled")
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setToolTip("Save every buffered sample (up to an hour) as a CSV file")
        self.save_png_button = QToolButton()
        self.save_png_button.setText("Save chart as PNG ▾")
        self.save_png_button.setObjectName("savePngButton")
        self.save_png_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.state_label = QLabel("")
        self.state_label.setObjectName("telemetryState")
        toolbar = QHBoxLayout()
        toolbar.addWidget(self.pause_button)
        toolbar.addSpacing(8)
        toolbar.addWidget(QLabel("Window"))
        toolbar.addWidget(self.window_combo)
        toolbar.addWidget(QLabel("Sample every"))
        toolbar.addWidget(self.interval_combo)
        toolbar.addSpacing(8)
        toolbar.addWidget(self.export_csv_button)
        toolbar.addWidget(self.save_png_button)
        toolbar.addSpacing(8)
        toolbar.addWidget(self.state_label, 1)
        return toolbar

    def _build_charts(self) -> QWidget:
        """One chart per figure, in sections (engine, GPU, system) of COLUMNS columns, with the GPU card."""
        gpu = self.service.gpu
        if gpu.available:
            self.gpu_card = InfoCard("GPU processes", "No processes on the GPU yet.")
        else:
            self.gpu_card = InfoCard("GPU", "No NVIDIA GPU detected.\nGPU charts appear when NVML finds one; "
                                            "engine and system figures are live.", detail=gpu.reason or "")
        self.charts: dict[str, TelemetryChart] = {}
        placed: list[tuple[str, QWidget]] = []
        for spec in chart_specs(len(gpu.device_names), self.service.system.core_count):
            self.charts[spec.key] = TelemetryChart(spec)
            placed.append((spec.section, self.charts[spec.key]))
        card_section = "GPU" if gpu.available else "System"
        card_after = max(i for i, (section, _w) in enumerate(placed) if section == card_section)
        placed.insert(card_after + 1, (card_section, self.gpu_card))
        charts_box = QWidget()
        charts_box.setObjectName("telemetryCharts")
        grid = QGridLayout(charts_box)
        grid.setContentsMargins(4, 0, 4, 4)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(6)
        row, column, section = 0, 0, None
        for widget_section, widget in placed:
            if widget_section != section:
                section = widget_section
                row += 1 if column else 0
                heading = QLabel(section)
                heading.setObjectName("sectionTitle")
                grid.addWidget(heading, row, 0, 1, COLUMNS)
                row, column = row + 1, 0
            grid.addWidget(widget, row, column)
            column = (column + 1) % COLUMNS
            row += 1 if column == 0 else 0
        for index in range(COLUMNS):
            grid.setColumnStretch(index, 1)
        grid.setRowStretch(row + 1, 1)
        return charts_box

    def _build_save_menu(self) -> QMenu:
        menu = QMenu(self.save_png_button)
        for key, chart in self.charts.items():
            menu.addAction(chart.spec.title, lambda key=key: self._ask_save_chart(key))
        return menu

    def _build_alerts_and_prometheus(self, telemetry: TelemetryAdapter) -> QWidget:
        self.alerts = AlertLogView(telemetry)
        self.prometheus = PrometheusSwitch(telemetry)
        self.prometheus.setFixedWidth(330)
        bottom = QWidget()
        bottom_layout = QHBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.alerts, 1)
        bottom_layout.addWidget(self.prometheus)
        return bottom

    # --- drawing -------------------------------------------------------------------------------------------------
    def redraw(self, all_charts: bool = False) -> int:
        """Redraw the charts on screen (every chart when `all_charts`) that have not seen the newest sample;
        returns how many were drawn. Does nothing while paused."""
        if self.paused or not (self.isVisible() or all_charts):
            return 0
        version = (self.service.history.appended, self.window_s)
        stale = [chart for chart in self.charts.values()
                 if chart.drawn_version != version and (all_charts or not chart.visibleRegion().isEmpty())]
        if not stale or not len(self.service.history):
            return 0
        times, series = self.service.history.window(self.window_s, [key for chart in stale for key in chart.keys])
        x_range = (times[-1] - self.window_s, times[-1])
        for chart in stale:
            chart.draw(times, series, x_range)
            chart.drawn_version = version
        self._show_gpu_processes()
        return len(stale)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.state_label.setText("Paused — sampling goes on; the charts catch up on Resume." if paused else "")
        if not paused:
            self.redraw()

    def set_window(self, seconds: float) -> None:
        self.window_s = float(seconds)
        index = self.window_combo.findData(seconds)
        if index >= 0 and index != self.window_combo.currentIndex():
            self.window_combo.setCurrentIndex(index)
        self.redraw()

    def _show_gpu_processes(self) -> None:
        frame = self.service.latest
        if frame is None or not frame.gpus:
            return
        lines = []
        for gpu in frame.gpus:
            memory = ""
            if gpu.memory_used_bytes is not None and gpu.memory_total_bytes:
                memory = f" · {gpu.memory_used_bytes / 2**30:.1f} of {gpu.memory_total_bytes / 2**30:.1f} GiB"
            lines.append(f"GPU {gpu.index} · {gpu.name}{memory}")
            for process in gpu.processes[:5]:
                used = "" if process.used_memory_bytes is None else f"  {process.used_memory_bytes / 2**30:.1f} GiB"
                lines.append(f"   {process.name} (pid {process.pid}){used}")
            if not gpu.processes:
                lines.append("   no processes")
        self.gpu_card.set_text("\n".join(lines))

    # --- export --------------------------------------------------------------------------------------------------
    def export_csv(self, path: Path | str) -> int:
        """Write every buffered sample to `path`; returns the row count (TelemetryExportFailed if it cannot)."""
        rows = export_csv(self.service.history, path)
        self._notice(f"Saved {rows:,} samples to {path}", ok=True)
        return rows

    def save_chart_png(self, key: str, path: Path | str) -> None:
        chart = self.charts[key]
        if not self.paused:
            chart.drawn_version = None
            self.redraw(all_charts=True)
        if not chart.grab().save(str(path), "PNG"):
            raise TelemetryExportFailed(f"Cannot write {path}. Choose another folder or file name.")
        self._notice(f"Saved the {chart.spec.title} chart to {path}", ok=True)

    def _ask_export_csv(self) -> None:
        default = Path.home() / time.strftime("llm-console-telemetry-%Y%m%d-%H%M%S.csv")
        path, _filter = QFileDialog.getSaveFileName(self, "Export telemetry as CSV", str(default), "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except TelemetryError as error:
                self._notice(str(error), ok=False)

    def _ask_save_chart(self, key: str) -> None:
        default = Path.home() / time.strftime(f"llm-console-{key}-%Y%m%d-%H%M%S.png")
        path, _filter = QFileDialog.getSaveFileName(self, "Save chart as PNG", str(default), "PNG images (*.png)")
        if path:
            try:
                self.save_chart_png(key, path)
            except TelemetryError as error:
                self._notice(str(error), ok=False)

    def _notice(self, text: str, ok: bool) -> None:
        self.state_label.setText(text if ok else f"⚠ {text}")
        self.state_label.setProperty("state", "ok" if ok else "error")
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)

    # --- settings ------------------------------------------------------------------------------------------------
    def _set_interval(self, seconds: float) -> None:
        try:
            self.telemetry.set_interval(seconds)
        except TelemetryError as error:
            self._notice(str(error), ok=False)
