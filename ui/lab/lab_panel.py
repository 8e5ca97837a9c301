"""The Lab tab: plan and run a sweep of the model bar's model (in a worker, with progress, ETA and Cancel),
pick a stored sweep, enter an SLA, read the answers and charts, apply the recommendation, export."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.errors import ConsoleError
from console.lab.analysis import Answers, Sla
from console.lab.export import sweep_csv, sweep_json
from console.lab.plan import SweepPlan, supported_precisions
from console.units import format_size
from engine import EngineError
from engine.weights.devices import PRECISIONS
from ui.adapters.lab_adapter import LabAdapter
from ui.lab.lab_charts import LabCharts
from ui.widgets.forms import form_group, notice_label
from ui.widgets.spin_boxes import double_spin_box, int_spin_box

COLUMNS = ("Precision", "Batch", "Users", "tok/s", "tok/s/user", "req/s", "TTFT p50", "TTFT p99", "ITL p99",
           "e2e p99", "Peak memory", "CV", "Notes")


class LabPanel(QWidget):
    applied = Signal(object)  # ApplyOutcome: the window sets the model bar's precision (and reloads if needed)

    def __init__(self, adapter: LabAdapter, target_factory, parent: QWidget | None = None):
        """`target_factory()` gives the model bar's selection (what a new sweep measures) and the device."""
        super().__init__(parent)
        self.adapter = adapter
        self.core = adapter.core
        self.session = adapter.session
        self._target_factory = target_factory
        self.answers: Answers | None = None

        # --- planning ---
        self.precision_boxes: dict[str, QCheckBox] = {}
        precision_row = QGridLayout()
        supported = supported_precisions("auto")
        for index, name in enumerate(p for p in PRECISIONS if p != "auto"):
            box = QCheckBox(name)
            box.setChecked(name in supported)
            self.precision_boxes[name] = box
            precision_row.addWidget(box, index // 3, index % 3)
        self.batch_sizes = QLineEdit("2,4,8,16")
        self.batch_sizes.setToolTip("Max batch sizes, comma-separated")
        self.concurrency = QLineEdit("1,2,4,8,16")
        self.concurrency.setToolTip("Concurrent users, comma-separated")
        self.max_waits = QLineEdit("5")
        self.max_waits.setToolTip("Max waits in ms, comma-separated")
        self.repetitions = int_spin_box(3, 20, 3, "Interleaved repetitions per point (median and spread)")
        self.new_tokens = int_spin_box(2, 4096, 32, "Tokens generated per request")
        self.skip_unbound = QCheckBox("Skip batch sizes that add nothing")
        self.skip_unbound.setChecked(True)
        self.skip_unbound.setToolTip("A max batch size above the users runs the same batches as a smaller one; "
                                     "one under half the users keeps the rest in the queue the whole run. "
                                     "Both are skipped, with the reason in the table")
        self.run_button = QPushButton("Run sweep")
        self.run_button.setObjectName("primaryButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.progress_label = notice_label("jobProgress", "Sweeps the model chosen in the bar above.")

        buttons = QHBoxLayout()
        for button in (self.run_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        plan_box, _form = form_group("Sweep", [
            ("Precisions", precision_row),
            ("Max batch sizes", self.batch_sizes),
            ("Users", self.concurrency),
            ("Max wait (ms)", self.max_waits),
            ("Repetitions", self.repetitions),
            ("New tokens", self.new_tokens),
            self.skip_unbound,
            buttons,
            self.progress,
            self.progress_label,
        ])

        # --- results ---
        self.sweep_combo = QComboBox()
        self.sweep_combo.setMinimumWidth(220)
        self.ttft_limit = double_spin_box(0, 600_000, 50, 0, "p99 time to first token; 0 = no limit", " ms")
        self.itl_limit = double_spin_box(0, 60_000, 5, 0, "p99 inter-token latency; 0 = no limit", " ms")
        self.memory_limit = double_spin_box(0, 10_000_000, 100, 0, "peak memory; 0 = no limit", " MB")
        self.perplexity_limit = double_spin_box(0, 1000, 0.5, 0, "perplexity increase over the widest precision; 0 = no limit", " %")
        for box in (self.ttft_limit, self.itl_limit, self.memory_limit, self.perplexity_limit):
            box.setSpecialValueText("no limit")
        self.answers_label = QLabel("No sweep yet — run one above.")
        self.answers_label.setWordWrap(True)
        self.answers_label.setObjectName("cardText")
        self.answers_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.apply_button = QPushButton("Apply recommendation")
        self.apply_button.setObjectName("primaryButton")
        self.apply_button.setToolTip("Set the recommended batching knobs now and the model bar's precision")
        self.save_default = QCheckBox("Also save as this version's defaults")
        self.save_default.setToolTip("Loads of this model version on this device at precision auto then use the "
                                     "recommended precision and batching knobs")
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_json_button = QPushButton("Export JSON…")
        self.save_png_button = QPushButton("Save charts as PNG…")
        self.notice = notice_label("registryNotice")

        exports = QHBoxLayout()
        for button in (self.export_csv_button, self.export_json_button):
            exports.addWidget(button)
        results_box, _results = form_group("Results and SLA", [
            ("Sweep", self.sweep_combo),
            ("TTFT p99 ≤", self.ttft_limit),
            ("ITL p99 ≤", self.itl_limit),
            ("Memory ≤", self.memory_limit),
            ("Perplexity +", self.perplexity_limit),
            self.answers_label,
            self.apply_button,
            self.save_default,
            exports,
            self.save_png_button,
            self.notice,
        ])

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(plan_box)
        side_layout.addWidget(results_box)
        side_layout.addStretch(1)
        side_scroll = QScrollArea()
        side_scroll.setWidget(side)
        side_scroll.setWidgetResizable(True)
        side_scroll.setFixedWidth(410)
        side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.charts = LabCharts()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(200)
        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 4, 0)
        body_layout.addWidget(self.charts)
        body_layout.addWidget(self.table)
        body_scroll = QScrollArea()
        body_scroll.setWidget(body)
        body_scroll.setWidgetResizable(True)
        body_scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addWidget(side_scroll)
        layout.addWidget(body_scroll, 1)

        self.run_button.clicked.connect(self.run_sweep)
        self.cancel_button.clicked.connect(self._cancel)
        self.resume_button.clicked.connect(self.resume_sweep)
        self.sweep_combo.currentIndexChanged.connect(lambda _i: self.show_selected())
        for box in (self.ttft_limit, self.itl_limit, self.memory_limit, self.perplexity_limit):
            box.valueChanged.connect(lambda _v: self.show_selected())
        self.apply_button.clicked.connect(self.apply_recommendation)
        self.export_csv_button.clicked.connect(lambda: self._export("csv"))
        self.export_json_button.clicked.connect(lambda: self._export("json"))
        self.save_png_button.clicked.connect(self._save_png)
        adapter.sweep_started.connect(self._started)
        adapter.sweep_progress.connect(self._progress)
        adapter.sweep_finished.connect(lambda sweep_id: self._ended(sweep_id, "Sweep finished.", "ok"))
        adapter.sweep_cancelled.connect(lambda sweep_id, message: self._ended(sweep_id, message, ""))
        adapter.sweep_failed.connect(lambda sweep_id, message: self._ended(sweep_id, message, "error"))

    # --- reading ------------------------------------------------------------------------------------------
    def refresh(self, select: int | None = None) -> None:
        """Reload the stored sweeps into the picker (newest first) and show `select` or the current one."""
        if not self.session.can(Permission.METRICS_VIEW):
            return
        current = select if select is not None else self.sweep_combo.currentData()
        self.sweep_combo.blockSignals(True)
        self.sweep_combo.clear()
        for sweep in self.core.lab.sweeps(self.session.principal):
            self.sweep_combo.addItem(f"#{sweep.id} {sweep.model_name} · {sweep.device} · {sweep.state}", sweep.id)
        index = self.sweep_combo.findData(current)
        self.sweep_combo.setCurrentIndex(index if index >= 0 else 0)
        self.sweep_combo.blockSignals(False)
        self.show_selected()

    def sla(self) -> Sla:
        value = lambda box, scale: box.value() * scale if box.value() > 0 else None  # noqa: E731
        memory = value(self.memory_limit, 2**20)
        return Sla(ttft_p99_s=value(self.ttft_limit, 0.001), itl_p99_s=value(self.itl_limit, 0.001),
                   memory_bytes=int(memory) if memory else None, perplexity_increase_pct=value(self.perplexity_limit, 1))

    def show_selected(self) -> None:
        sweep_id = self.sweep_combo.currentData()
        if sweep_id is None:
            self.answers = None
            self.table.setRowCount(0)
            self.answers_label.setText("No sweep yet — run one above.")
            self._set_result_buttons(False)
            return
        sweep, points, precisions = self.core.lab.sweep(self.session.principal, sweep_id)
        self.answers = self.core.lab.answers(self.session.principal, sweep_id, self.sla())
        self.charts.show_sweep(self.answers, precisions)
        self._fill_table(points)
        self.answers_label.setText(self.answers.summary())
        self._set_result_buttons(True)
        self.apply_button.setEnabled(self.answers.recommendation is not None and self.session.can(Permission.ENGINE_CONFIGURE))
        self.resume_button.setEnabled(sweep.resumable and not self.adapter.busy and self.session.can(Permission.BENCH_RUN))

    def _fill_table(self, points) -> None:
        judged = {j.record.point.key: j for j in self.answers.judged}
        self.table.setRowCount(len(points))
        for row, record in enumerate(points):
            p = record.point
            cells = [p.precision, str(p.batch_size), str(p.concurrency)]
            if record.summary is None:
                cells += [""] * (len(COLUMNS) - 4) + [f"skipped: {record.skip_reason}"]
            else:
                f, j = record.summary.median, judged[p.key]
                notes = [] if j.meets else ["misses SLA"]
                notes += ["unstable"] if record.summary.unstable else []
                notes += [f"{f.errors} errors"] if f.errors else []
                cells += [f"{f.output_tokens_per_s:.1f}", f"{f.tokens_per_s_per_user:.1f}", f"{f.requests_per_s:.2f}",
                          f"{f.ttft_p50_s * 1000:.0f} ms", f"{f.ttft_p99_s * 1000:.0f} ms", f"{f.itl_p99_s * 1000:.1f} ms",
                          f"{f.latency_p99_s:.2f} s", format_size(f.peak_memory_bytes),
                          f"{record.summary.throughput_cv * 100:.0f} %", ", ".join(notes)]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if 3 <= column < len(COLUMNS) - 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)

    def _set_result_buttons(self, enabled: bool) -> None:
        for button in (self.apply_button, self.export_csv_button, self.export_json_button, self.save_png_button):
            button.setEnabled(enabled)

    # --- running ------------------------------------------------------------------------------------------
    def plan(self) -> SweepPlan:
        def numbers(edit: QLineEdit, kind, name: str):
            try:
                values = tuple(kind(part) for part in edit.text().split(",") if part.strip())
            except ValueError:
                raise ConsoleError(f"{name} takes numbers separated by commas (got {edit.text()!r}).") from None
            return values

        return SweepPlan(
            precisions=tuple(name for name, box in self.precision_boxes.items() if box.isChecked()),
            batch_sizes=numbers(self.batch_sizes, int, "Max batch sizes"),
            concurrency=numbers(self.concurrency, int, "Users"),
            max_wait_ms=numbers(self.max_waits, float, "Max wait"),
            repetitions=self.repetitions.value(),
            new_tokens=self.new_tokens.value(),
            skip_unbound_batches=self.skip_unbound.isChecked(),
            skip_starved_batches=self.skip_unbound.isChecked(),
        ).validate()

    def run_sweep(self) -> None:
        try:
            load_target, device = self._target_factory()
            self.adapter.start(load_target, self.plan(), device)
        except (ConsoleError, EngineError) as error:
            self._notify(str(error), "error")

    def resume_sweep(self) -> None:
        try:
            self.adapter.resume(self.sweep_combo.currentData())
        except (ConsoleError, EngineError) as error:
            self._notify(str(error), "error")

    def _cancel(self) -> None:
        self.adapter.cancel()
        self.cancel_button.setEnabled(False)
        self.progress_label.setText("Cancelling after the current repetition…")

    def _started(self, sweep_id: int) -> None:
        self.run_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.progress_label.setText(f"Sweep #{sweep_id} starting…")
        self._notify("", "")
        self.refresh(select=sweep_id)

    def _progress(self, step) -> None:
        self.progress.setValue(int(step.fraction * 100))
        eta = f" · about {step.eta_s:.0f} s left" if step.eta_s is not None else ""
        self.progress_label.setText(f"Repetition {min(step.done + 1, step.total)} of {step.total}{eta} — {step.message}")
        self.refresh()  # points finish one repetition apart: each may have added one to the charts

    def _ended(self, sweep_id: int, message: str, state: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)
        self.progress_label.setText(message)
        self._notify(message, state)
        self.refresh(select=sweep_id)

    # --- applying and exporting ---------------------------------------------------------------------------
    def apply_recommendation(self) -> None:
        try:
            outcome = self.core.lab.apply(self.session.principal, self.sweep_combo.currentData(), self.sla(),
                                          save_default=self.save_default.isChecked())
        except (ConsoleError, EngineError) as error:
            self._notify(str(error), "error")
            return
        r = outcome.recommendation
        saved = " and saved as this version's defaults" if self.save_default.isChecked() else ""
        reload = " Reload the model at that precision to use it." if outcome.reload_needed else ""
        self._notify(f"Applied{saved}: {r.precision}, max batch size {r.max_batch_size}, max wait {r.max_wait_ms:g} ms."
                     + reload, "ok")
        self.applied.emit(outcome)

    def export_text(self, kind: str) -> str:
        sweep, points, precisions = self.core.lab.sweep(self.session.principal, self.sweep_combo.currentData())
        return (sweep_csv if kind == "csv" else sweep_json)(sweep, points, precisions, self.sla())

    def _export(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export the sweep as {kind.upper()}",
                                              f"sweep-{self.sweep_combo.currentData()}.{kind}", f"{kind.upper()} (*.{kind})")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(self.export_text(kind))
            self._notify(f"Wrote {path}", "ok")

    def _save_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the charts", f"sweep-{self.sweep_combo.currentData()}.png",
                                              "PNG (*.png)")
        if path and self.charts.save_png(path):
            self._notify(f"Saved {path}", "ok")

    def _notify(self, message: str, state: str) -> None:
        self.notice.setText(message)
        self.notice.setProperty("state", state)
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
