"""The Lab tab's charts of one sweep: throughput against users per precision, p99 latency against throughput,
the Pareto front (tok/s per user against total tok/s, each point labelled), and memory and perplexity per
precision. Hovering a point shows its figures; the whole set saves as one PNG."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from console.lab.analysis import Answers, Judged
from console.lab.sweep_store import PrecisionRecord
from console.units import format_size

PRECISION_COLORS = {"fp32": "#2f6fde", "bf16": "#2b8a3e", "fp16": "#0b7285", "int8": "#d9480f", "int4": "#7048e8"}
CHART_HEIGHT = 230
MB = 1 / 2**20


def point_tip(j: Judged) -> str:
    """What hovering a point shows: its configuration and figures."""
    f = j.figures
    lines = [j.record.point.label,
             f"{f.output_tokens_per_s:.1f} tok/s total · {f.tokens_per_s_per_user:.1f} tok/s per user · {f.requests_per_s:.2f} req/s",
             f"TTFT p50 {f.ttft_p50_s * 1000:.0f} ms · p99 {f.ttft_p99_s * 1000:.0f} ms",
             f"ITL p50 {f.itl_p50_s * 1000:.1f} ms · p99 {f.itl_p99_s * 1000:.1f} ms",
             f"end to end p99 {f.latency_p99_s:.2f} s · peak {format_size(f.peak_memory_bytes)}",
             f"CV {j.record.summary.throughput_cv * 100:.0f} %" + (" (unstable)" if j.record.summary.unstable else "")]
    if j.misses:
        lines.append("misses the SLA: " + "; ".join(j.misses))
    return "\n".join(lines)


class LabChart(QWidget):
    """A titled pyqtgraph plot with a legend."""

    def __init__(self, title: str, x_label: str, y_label: str, parent: QWidget | None = None, legend: bool = True):
        super().__init__(parent)
        self.setObjectName("telemetryChart")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setMinimumHeight(CHART_HEIGHT)
        self.title = QLabel(title)
        self.title.setObjectName("chartTitle")
        self.plot = pg.PlotWidget(background="w")
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.showGrid(x=True, y=True, alpha=0.15)
        for name, label in (("bottom", x_label), ("left", y_label)):
            axis = item.getAxis(name)
            axis.setTextPen("#5d6875")
            axis.setPen("#c4cad3")
            axis.setLabel(label, color="#5d6875")
        self.legend = item.addLegend(offset=(-6, 4), labelTextColor="#3c4450", labelTextSize="8pt", colCount=5,
                                     brush=pg.mkBrush(255, 255, 255, 200)) if legend else None
        item.getViewBox().setDefaultPadding(0.08)  # room for the labels at the edges
        self.empty = QLabel("No measured point yet")
        self.empty.setObjectName("chartEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.empty)
        self.points: list[pg.ScatterPlotItem] = []

    def clear(self) -> None:
        self.plot.getPlotItem().clear()
        if self.legend is not None:
            self.legend.clear()
        self.points = []

    def scatter(self, xs, ys, tips: list[str], color: str, name: str | None = None, line: bool = False,
                size: int = 9, symbol: str = "o") -> pg.ScatterPlotItem:
        item = self.plot.getPlotItem()
        if line and len(xs) > 1:
            item.addItem(pg.PlotDataItem(list(xs), list(ys), pen=pg.mkPen(color, width=1.5)))
        scatter = pg.ScatterPlotItem(list(xs), list(ys), data=tips, size=size, symbol=symbol, brush=pg.mkBrush(color),
                                     pen=pg.mkPen("w"), hoverable=True, hoverSize=size + 4,
                                     tip=lambda x, y, data: data, name=name)
        item.addItem(scatter)  # a named item joins the legend by itself
        self.points.append(scatter)
        return scatter

    def set_empty(self, empty: bool) -> None:
        self.empty.setVisible(empty)
        self.plot.setVisible(not empty)


class LabCharts(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.throughput = LabChart("Throughput by users", "concurrent users", "tok/s (best batch size)")
        self.latency = LabChart("p99 latency against throughput", "tok/s", "end-to-end p99 (s)")
        self.pareto = LabChart("Pareto front (★, labelled): tok/s per user against total tok/s", "total tok/s",
                               "tok/s per user", legend=False)
        self.memory = LabChart("Memory per precision", "precision", "MB")
        self.perplexity = LabChart("Perplexity per precision", "precision", "perplexity")
        self.labels: list[pg.TextItem] = []  # the Pareto front's point labels
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(8)
        grid.addWidget(self.throughput, 0, 0)
        grid.addWidget(self.latency, 0, 1)
        grid.addWidget(self.pareto, 1, 0, 1, 2)
        grid.addWidget(self.memory, 2, 0)
        grid.addWidget(self.perplexity, 2, 1)

    @property
    def charts(self) -> list[LabChart]:
        return [self.throughput, self.latency, self.pareto, self.memory, self.perplexity]

    def show_sweep(self, answers: Answers, precisions: dict[str, PrecisionRecord]) -> None:
        for chart in self.charts:
            chart.clear()
        self.labels = []
        judged = answers.judged
        names = [name for name in PRECISION_COLORS if any(j.record.point.precision == name for j in judged)]
        for name in names:
            color = PRECISION_COLORS[name]
            mine = [j for j in judged if j.record.point.precision == name]
            best: dict[int, Judged] = {}
            for j in mine:
                users = j.record.point.concurrency
                if users not in best or j.figures.output_tokens_per_s > best[users].figures.output_tokens_per_s:
                    best[users] = j
            ordered = [best[users] for users in sorted(best)]
            self.throughput.scatter([j.record.point.concurrency for j in ordered],
                                    [j.figures.output_tokens_per_s for j in ordered],
                                    [point_tip(j) for j in ordered], color, name, line=True)
            self.latency.scatter([j.figures.output_tokens_per_s for j in mine], [j.figures.latency_p99_s for j in mine],
                                 [point_tip(j) for j in mine], color, name)
            self.pareto.scatter([j.figures.output_tokens_per_s for j in mine], [j.figures.tokens_per_s_per_user for j in mine],
                                [point_tip(j) for j in mine], color, name, size=7)
        front = answers.pareto
        if front:
            self.pareto.scatter([j.figures.output_tokens_per_s for j in front], [j.figures.tokens_per_s_per_user for j in front],
                                [point_tip(j) for j in front], "#212529", "Pareto front", line=True, size=11, symbol="star")
            for j in front:
                label = pg.TextItem(j.label, color="#3c4450", anchor=(0, 1))
                label.setPos(j.figures.output_tokens_per_s, j.figures.tokens_per_s_per_user)
                self.pareto.plot.getPlotItem().addItem(label)
                self.labels.append(label)
        self._bars(precisions, judged)
        for chart in (self.throughput, self.latency, self.pareto):
            chart.set_empty(not judged)
        for chart in (self.memory, self.perplexity):
            chart.set_empty(not precisions)

    def _bars(self, precisions: dict[str, PrecisionRecord], judged: list[Judged]) -> None:
        names = [name for name in PRECISION_COLORS if name in precisions and precisions[name].weight_bytes]
        ticks = [[(i, name) for i, name in enumerate(names)]]
        for chart in (self.memory, self.perplexity):
            chart.plot.getPlotItem().getAxis("bottom").setTicks(ticks)
        for i, name in enumerate(names):
            record = precisions[name]
            peak = max((j.figures.peak_memory_bytes for j in judged if j.record.point.precision == name), default=0)
            color = PRECISION_COLORS[name]
            self.memory.plot.getPlotItem().addItem(pg.BarGraphItem(x=[i - 0.18], height=[record.weight_bytes * MB], width=0.34,
                                                                   brush=color, pen=pg.mkPen(color)))
            self.memory.plot.getPlotItem().addItem(pg.BarGraphItem(x=[i + 0.18], height=[peak * MB], width=0.34,
                                                                   brush=pg.mkBrush(color + "55"), pen=pg.mkPen(color)))
            self.memory.scatter([i - 0.18], [record.weight_bytes * MB],
                                [f"{name}: weights {format_size(record.weight_bytes)} (estimated "
                                 f"{format_size(record.estimated_weight_bytes)})"], color, size=6)
            self.memory.scatter([i + 0.18], [peak * MB], [f"{name}: peak memory {format_size(peak)} during the sweep"],
                                color, size=6, symbol="s")
            if record.perplexity:
                self.perplexity.plot.getPlotItem().addItem(pg.BarGraphItem(x=[i], height=[record.perplexity], width=0.5,
                                                                           brush=color, pen=pg.mkPen(color)))
                self.perplexity.scatter([i], [record.perplexity], [f"{name}: perplexity {record.perplexity:.3f}"], color, size=6)

    def save_png(self, path: str) -> bool:
        return self.grab().save(path, "PNG")
