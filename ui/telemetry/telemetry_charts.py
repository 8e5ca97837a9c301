"""The dashboard's charts: which series each figure family draws (`chart_specs`), and `TelemetryChart`, one
pyqtgraph plot with its current values beside it.

A chart creates its curves once and redraws with `setData`; curves break at NaN (a figure missing in a sample)
and are thinned to the pixels they occupy, so an hour at 100 ms (36,000 points) draws about as fast as a minute.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from console.telemetry.frame import cpu_core_series, gpu_series

GIB = 1 / 2**30
GPU_COLORS = ("#2f6fde", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0b7285", "#e67700", "#495057")
CORE_COLORS = ("#9fb7e3", "#a8d5b5", "#f0b39a", "#c3b4ee", "#ebaac4", "#9bcfd8", "#f3cc8c", "#b8bec5")
CHART_HEIGHT = 160
GRID_STEPS = 4
PER_CORE_LIMIT = 16  # more cores than this: draw the average and the busiest core only


@dataclass(frozen=True)
class SeriesSpec:
    key: str  # a series name in the telemetry history
    label: str
    color: str
    scale: float = 1.0  # stored unit → shown unit (bytes → GiB, s → ms)
    dashed: bool = False
    width: float = 1.0
    listed: bool = True  # its current value shows beside the chart
    plotted: bool = True  # False: a reference value listed beside the chart only (RAM total)


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    unit: str
    section: str  # "Engine", "GPU" or "System"
    series: tuple[SeriesSpec, ...]
    decimals: int = 1
    percent: bool = False  # a fixed 0–100 axis
    counts: bool = False  # values are plain counts: no unit after each one (the title has it)
    empty_text: str = "No value reported"  # shown on the plot while every series is empty


def _engine_specs() -> list[ChartSpec]:
    blue, green, orange, red, grey = "#2f6fde", "#2b8a3e", "#d9480f", "#b3261e", "#868e96"
    percentiles = lambda prefix: tuple(  # noqa: E731
        SeriesSpec(f"{prefix}_{p}_s", p, color, 1000.0) for p, color in (("p50", green), ("p95", orange), ("p99", red))
    )
    return [
        ChartSpec("throughput", "Throughput", "tok/s", "Engine",
                  (SeriesSpec("decode_tokens_per_second", "decode", blue),
                   SeriesSpec("prefill_tokens_per_second", "prefill", green))),
        ChartSpec("queue", "Queue and batch", "requests", "Engine",
                  (SeriesSpec("requests_waiting", "queued", orange), SeriesSpec("requests_running", "running", blue),
                   SeriesSpec("max_batch_size", "max batch", grey, dashed=True)), decimals=0, counts=True),
        ChartSpec("kv_cache", "KV cache", "tokens", "Engine",
                  (SeriesSpec("kv_cache_tokens", "in use", blue),), decimals=0, counts=True),
        ChartSpec("ttft", "Time to first token", "ms", "Engine", percentiles("ttft"), decimals=0,
                  empty_text="No finished request yet"),
        ChartSpec("latency", "End-to-end latency", "ms", "Engine", percentiles("latency"), decimals=0,
                  empty_text="No finished request yet"),
        ChartSpec("requests", "Requests ended", "requests", "Engine",
                  (SeriesSpec("requests_finished", "finished", green), SeriesSpec("requests_failed", "failed", red),
                   SeriesSpec("requests_cancelled", "cancelled", grey)), decimals=0, counts=True),
    ]


def _gpu_specs(gpu_count: int) -> list[ChartSpec]:
    def per_gpu(field: str, scale: float = 1.0, suffix: str = "", dashed: bool = False, listed: bool = True):
        return tuple(
            SeriesSpec(gpu_series(i, field), f"GPU {i}{suffix}", GPU_COLORS[i % len(GPU_COLORS)], scale, dashed,
                       listed=listed)
            for i in range(gpu_count)
        )

    return [
        ChartSpec("gpu_utilization", "GPU utilisation", "%", "GPU", per_gpu("utilization_percent"), 0, percent=True),
        ChartSpec("gpu_memory", "GPU memory", "%", "GPU", per_gpu("memory_percent"), 0, percent=True),
        ChartSpec("gpu_temperature", "GPU temperature", "°C", "GPU", per_gpu("temperature_c"), 0),
        ChartSpec("gpu_power", "GPU power", "W", "GPU",
                  per_gpu("power_w", suffix=" draw") + per_gpu("power_limit_w", suffix=" limit", dashed=True), 0),
        ChartSpec("gpu_clocks", "GPU clocks", "MHz", "GPU",
                  per_gpu("sm_clock_mhz", suffix=" SM") + per_gpu("memory_clock_mhz", suffix=" memory", dashed=True), 0),
    ]


def _system_specs(core_count: int) -> list[ChartSpec]:
    cpu = [SeriesSpec("cpu_percent", "all cores", "#2f6fde", width=2.0)]
    if core_count <= PER_CORE_LIMIT:
        cpu += [SeriesSpec(cpu_core_series(core), f"core {core}", CORE_COLORS[core % len(CORE_COLORS)], width=1.0,
                           listed=core_count <= 4) for core in range(core_count)]
    cpu.append(SeriesSpec("cpu_busiest_core_percent", "busiest core", "#d9480f",
                          listed=core_count > 4, dashed=True))
    if core_count <= 4:
        cpu.pop()  # every core is drawn and listed
    return [
        ChartSpec("cpu", "CPU", "%", "System", tuple(cpu), 0, percent=True),
        ChartSpec("memory", "Memory", "GiB", "System",
                  (SeriesSpec("ram_used_bytes", "RAM used", "#2f6fde", GIB),
                   SeriesSpec("process_rss_bytes", "this app", "#2b8a3e", GIB),
                   SeriesSpec("ram_total_bytes", "RAM total", "#868e96", GIB, plotted=False))),
    ]


def chart_specs(gpu_count: int, core_count: int) -> list[ChartSpec]:
    """Engine first (what an operator tunes), then one chart per GPU figure family, then the system."""
    return _engine_specs() + (_gpu_specs(gpu_count) if gpu_count else []) + _system_specs(core_count)


def format_value(value: float, unit: str, decimals: int) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.{decimals}f} {unit}".rstrip()


class TelemetryChart(QWidget):
    """Title, plot and current values of one figure family."""

    def __init__(self, spec: ChartSpec, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self.setObjectName("telemetryChart")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.drawn_version: object = None  # what the panel last drew here

        self.title = QLabel(f"{spec.title} ({spec.unit})")
        self.title.setObjectName("chartTitle")
        self.plot = pg.PlotWidget(background="w", axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFixedHeight(CHART_HEIGHT)
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.disableAutoRange()
        tick_font = QFont()
        tick_font.setPointSizeF(7.5)
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setStyle(tickFont=tick_font, tickTextOffset=3)
            axis.setTextPen("#5d6875")
            axis.setPen("#c4cad3")
        item.getAxis("left").setWidth(46)
        item.getAxis("left").enableAutoSIPrefix(False)
        # Our own horizontal grid at our own ticks: pyqtgraph's grid replays the axis picture over the whole
        # plot on every repaint, which tripled the cost of a frame.
        self._grid = [pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen("#e9ecef")) for _ in range(GRID_STEPS)]
        for line in self._grid:
            line.setZValue(-10)
            item.addItem(line, ignoreBounds=True)
        self._y_top: float | None = None
        self._set_y_scale(100.0 if spec.percent else 1.0)

        self.curves: dict[str, pg.PlotDataItem] = {}
        for series in spec.series:
            if not series.plotted:
                continue
            pen = pg.mkPen(series.color, width=series.width,
                           style=Qt.PenStyle.DashLine if series.dashed else Qt.PenStyle.SolidLine)
            self.curves[series.key] = item.plot(pen=pen, connect="finite")
        self._downsample = 1

        self.empty = QLabel("Waiting for the first sample", self.plot)
        self.empty.setObjectName("chartEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.plot.installEventFilter(self)

        self.values = QLabel("–")
        self.values.setObjectName("chartValues")
        self.values.setTextFormat(Qt.TextFormat.RichText)
        self.values.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.values.setFixedWidth(150)
        self._show_values({})

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(6)
        body.addWidget(self.plot, 1)
        body.addWidget(self.values)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addLayout(body, 1)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name): keep the empty-state text centred
        if watched is self.plot and event.type() == QEvent.Type.Resize:
            left = self.plot.getPlotItem().getAxis("left").width()
            self.empty.setGeometry(int(left), 0, max(0, self.plot.width() - int(left)), self.plot.height() - 20)
        return super().eventFilter(watched, event)

    @property
    def keys(self) -> list[str]:
        return [series.key for series in self.spec.series]

    def draw(self, times: np.ndarray, series: dict[str, np.ndarray], x_range: tuple[float, float]) -> None:
        # Keep about two points per pixel: an hour at 100 ms is 36,000 samples on a few hundred pixels. The
        # factor comes from the sample count, not pyqtgraph's auto mode, which assumes evenly spaced samples.
        downsample = max(1, len(times) // max(1, 2 * self.plot.width()))
        if downsample != self._downsample:
            self._downsample = downsample
            for curve in self.curves.values():
                curve.setDownsampling(ds=downsample, auto=False, method="peak")
        top = 0.0
        empty = True
        latest: dict[str, float] = {}
        for spec in self.spec.series:
            values = series[spec.key] * spec.scale if spec.scale != 1.0 else series[spec.key]
            latest[spec.key] = float(values[-1]) if len(values) else math.nan
            if not spec.plotted:
                continue
            self.curves[spec.key].setData(times, values)
            if len(values) and not np.all(np.isnan(values)):
                top = max(top, float(np.nanmax(values)))
                empty = False
        self.empty.setText(self.spec.empty_text)
        self.empty.setVisible(empty)
        item = self.plot.getPlotItem()
        item.setXRange(*x_range, padding=0)
        if not self.spec.percent:
            self._fit_y(top)
        self._show_values(latest)

    def values_text(self) -> str:
        """The values column as plain text (what a person reads)."""
        return _plain(self.values.text())

    def _fit_y(self, top: float) -> None:
        if self.spec.counts and top * 1.05 <= 20:  # whole numbers at every quarter
            self._set_y_scale(4.0 * math.ceil(max(top * 1.05, 1.0) / 4.0))
        else:
            self._set_y_scale(_nice_ceiling(top * 1.05) if top > 0 else 1.0)

    def _set_y_scale(self, top: float) -> None:
        """0 to `top` with ticks and grid lines at quarters; only when it changes (the axis redraws then)."""
        if top == self._y_top:
            return
        self._y_top = top
        ticks = [top * step / GRID_STEPS for step in range(GRID_STEPS + 1)]
        item = self.plot.getPlotItem()
        item.getAxis("left").setTicks([[(tick, _tick_label(tick)) for tick in ticks], []])
        for line, tick in zip(self._grid, ticks[1:]):
            line.setValue(tick)
        item.setYRange(-0.03 * top, top * 1.04, padding=0)

    def _show_values(self, latest: dict[str, float]) -> None:
        lines = []
        for spec in self.spec.series:
            if not spec.listed:
                continue
            unit = "" if self.spec.counts else self.spec.unit
            value = format_value(latest.get(spec.key, math.nan), unit, self.spec.decimals)
            marker = "■" if spec.plotted else "&nbsp;&nbsp;"
            lines.append(f'<span style="color:{spec.color}">{marker}</span>&nbsp;{html.escape(spec.label)}&nbsp;<b>{value}</b>')
        self.values.setText("<br>".join(lines))


def _plain(rich: str) -> str:
    text = rich.replace("<br>", "\n").replace("&nbsp;", " ")
    text = re.sub(r"<[^>]+>", "", text)
    return "\n".join(line.strip() for line in html.unescape(text).replace("■ ", "").splitlines())


def _tick_label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _nice_ceiling(value: float) -> float:
    """The next of 1, 2, 4, 5, 8 × 10^n at or above value (quarters stay round), so the axis does not jitter
    with every sample."""
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 5, 8, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


class InfoCard(QWidget):
    """A text card in a chart's place: the GPU's empty state, or the processes on each GPU."""

    def __init__(self, title: str, text: str, detail: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("telemetryChart")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFixedHeight(CHART_HEIGHT)
        self.title = QLabel(title)
        self.title.setObjectName("chartTitle")
        self.body = QLabel(text)
        self.body.setObjectName("cardText")
        self.body.setWordWrap(True)
        self.body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.body, 1)
        if detail:
            self.detail = QLabel(detail)
            self.detail.setObjectName("cardDetail")
            self.detail.setWordWrap(True)
            layout.addWidget(self.detail)

    def set_text(self, text: str) -> None:
        self.body.setText(text)
