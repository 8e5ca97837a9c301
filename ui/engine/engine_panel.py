"""The engine panel: live batching knobs, the engine's figures, and speed/memory/quality per configuration."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.errors import ConsoleError
from console.units import format_size
from engine import EngineError, GenerationResult, LoadedModelInfo
from engine.batching_settings import MAX_BATCH_SIZE, MAX_THREADS, MAX_WAIT_CAP_MS, BatchingSettings
from ui.adapters.engine_adapter import EngineAdapter
from ui.widgets.forms import form_group, notice_label
from ui.widgets.spin_boxes import double_spin_box, int_spin_box


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"


LIVE_FIGURES = (
    ("waiting", "Waiting"), ("running", "Running"), ("occupancy", "Batch occupancy"),
    ("decode", "Generated tok/s"), ("prefill", "Prefill tok/s"), ("ttft", "TTFT p50 / p99"),
    ("latency", "Latency p50 / p99"), ("kv", "KV cache"), ("requests", "Finished / failed / cancelled"),
    ("oom", "Out-of-memory back-offs"), ("decoder", "Forward pass"), ("threads", "Threads now"),
)
SAVED_KNOBS = ("engine.max_batch_size", "engine.max_wait_ms", "engine.threads")  # settings that are also live knobs


class EnginePanel(QWidget):
    REFRESH_MS = 500

    def __init__(self, adapter: EngineAdapter, parent: QWidget | None = None):
        super().__init__(parent)
        self.adapter = adapter
        self.core, self.session = adapter.core, adapter.session
        self._last_tokens_per_second: float | None = None
        self._rows: dict[tuple, int] = {}
        self._notices_shown = 0

        left = QVBoxLayout()
        left.addWidget(self._build_knobs(self.core.engine_settings))
        left.addWidget(self._build_live_figures())
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self._build_quality(), 1)
        right.addWidget(self._build_notices())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addLayout(left, 2)
        layout.addLayout(right, 3)
        self._connect(adapter)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._refresh_if_shown)
        self.timer.start(self.REFRESH_MS)

    def _build_knobs(self, settings: BatchingSettings) -> QGroupBox:
        self.max_batch_size = int_spin_box(1, MAX_BATCH_SIZE, settings.max_batch_size, "Requests decoded together in one step")
        self.max_wait_ms = double_spin_box(0, MAX_WAIT_CAP_MS, 1, settings.max_wait_ms,
                                           "How long an idle engine waits for more requests before it starts a batch", " ms")
        self.max_prefill_tokens = int_spin_box(1, 1_000_000, settings.max_prefill_tokens, "Prompt tokens prefilled per step")
        self.queue_limit = int_spin_box(1, 100_000, settings.queue_limit, "Waiting requests beyond this are refused as busy")
        self.adaptive = QCheckBox("Adapt batch size to keep p99 time per token under")
        self.adaptive.setChecked(settings.adaptive)
        self.target_p99_ms = double_spin_box(1, 60_000, 10, settings.target_p99_ms, "p99 time per output token to keep under", " ms")
        self.threads = int_spin_box(0, MAX_THREADS, settings.threads, "Intra-op threads of the forward pass. Auto measures "
                                    "each step and uses fewer threads while another program takes a core")
        self.threads.setSpecialValueText("auto")
        self.response_cache = QCheckBox("Answer repeated greedy requests from the response cache")
        self.response_cache.setChecked(settings.response_cache)
        self.knob_error = notice_label("chatNotice")
        adaptive_row = QHBoxLayout()
        adaptive_row.addWidget(self.adaptive)
        adaptive_row.addWidget(self.target_p99_ms)
        knobs, _form = form_group("Batching (applies at the next step, no reload)", [
            ("Max batch size", self.max_batch_size),
            ("Max wait", self.max_wait_ms),
            ("Max prefill tokens / step", self.max_prefill_tokens),
            ("Queue limit", self.queue_limit),
            ("Threads", self.threads),
            adaptive_row,
            self.response_cache,
            self.knob_error,
        ])
        return knobs

    def _knob_widgets(self) -> tuple[QWidget, ...]:
        return (self.max_batch_size, self.max_wait_ms, self.max_prefill_tokens, self.queue_limit, self.threads,
                self.adaptive, self.target_p99_ms, self.response_cache)

    def _build_live_figures(self) -> QGroupBox:
        self.figures: dict[str, QLabel] = {}
        live = QGroupBox("Live figures")
        grid = QGridLayout(live)
        for row, (key, title) in enumerate(LIVE_FIGURES):
            grid.addWidget(QLabel(title), row, 0)
            value = QLabel("–")
            value.setObjectName("figureValue")
            grid.addWidget(value, row, 1)
            self.figures[key] = value
        return live

    def _build_quality(self) -> QGroupBox:
        quality = QGroupBox("Speed, memory and quality per configuration")
        self.measure_button = QPushButton("Measure perplexity")
        self.measure_button.setToolTip("Perplexity on a fixed text shipped with the app (lower is better)")
        self.measure_button.setEnabled(False)
        self.quality_status = QLabel("Load a model, chat, then measure: each configuration gets a row.")
        self.quality_status.setWordWrap(True)
        self.quality_table = QTableWidget(0, 5)
        self.quality_table.setHorizontalHeaderLabels(["Model", "Precision", "Weights", "Perplexity", "Last reply tok/s"])
        header = self.quality_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.quality_table.verticalHeader().setVisible(False)
        quality_layout = QVBoxLayout(quality)
        top = QHBoxLayout()
        top.addWidget(self.quality_status, 1)
        top.addWidget(self.measure_button)
        quality_layout.addLayout(top)
        quality_layout.addWidget(self.quality_table)
        return quality

    def _build_notices(self) -> QGroupBox:
        notices = QGroupBox("Engine notices")
        self.notice_list = QListWidget()
        self.notice_list.setMaximumHeight(90)
        self.notice_list.addItem("None yet: out-of-memory back-offs and other engine events appear here.")
        QVBoxLayout(notices).addWidget(self.notice_list)
        return notices

    def _connect(self, adapter: EngineAdapter) -> None:
        for box in (self.max_batch_size, self.max_prefill_tokens, self.queue_limit, self.threads, self.max_wait_ms, self.target_p99_ms):
            box.valueChanged.connect(self.apply_knobs)
        self.adaptive.toggled.connect(self.apply_knobs)
        self.response_cache.toggled.connect(self.apply_knobs)
        self.measure_button.clicked.connect(self._measure)
        adapter.load_finished.connect(self._model_loaded)
        adapter.unloaded.connect(lambda: self.measure_button.setEnabled(False))
        adapter.generation_finished.connect(self._reply_finished)
        adapter.perplexity_measured.connect(self._perplexity_measured)
        adapter.perplexity_failed.connect(self._perplexity_failed)

    def apply_permissions(self, can) -> None:
        """Knobs for those who may configure the engine, perplexity for those who may chat (the core checks again)."""
        for widget in self._knob_widgets():
            widget.setEnabled(can(Permission.ENGINE_CONFIGURE))
        self.measure_button.setVisible(can(Permission.CHAT_USE))

    def apply_saved_settings(self, changed: dict) -> None:
        """Saved batching settings apply to the running engine at once, and the knobs show them.
        Raises the core's error (EngineError, ConsoleError) when the engine refuses them."""
        knobs = {key.removeprefix("engine."): value for key, value in changed.items() if key in SAVED_KNOBS}
        if not knobs:
            return
        self.core.configure_engine(self.session.principal, **knobs)
        self.show_engine_knobs()

    def show_engine_knobs(self) -> None:
        """Show the knobs the engine runs with now (after saved settings or the lab's Apply changed them)."""
        applied = self.core.engine_settings
        for box, value in ((self.max_batch_size, applied.max_batch_size), (self.max_wait_ms, applied.max_wait_ms),
                           (self.threads, applied.threads)):
            box.blockSignals(True)  # show the values; the engine already has them
            box.setValue(value)
            box.blockSignals(False)

    # --- knobs -------------------------------------------------------------------------------------------
    def apply_knobs(self) -> None:
        try:
            self.core.configure_engine(
                self.session.principal,
                max_batch_size=self.max_batch_size.value(),
                max_wait_ms=self.max_wait_ms.value(),
                max_prefill_tokens=self.max_prefill_tokens.value(),
                queue_limit=self.queue_limit.value(),
                adaptive=self.adaptive.isChecked(),
                target_p99_ms=self.target_p99_ms.value(),
                response_cache=self.response_cache.isChecked(),
                threads=self.threads.value(),
            )
        except (EngineError, ConsoleError) as error:
            self.knob_error.setText(f"⚠ {error}")
            return
        self.knob_error.setText("")

    # --- live figures ------------------------------------------------------------------------------------
    def _refresh_if_shown(self) -> None:
        """The timer's tick: figures nobody sees are not worth the UI thread's time while a reply streams."""
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """The live figures, for those who may see metrics (checked first: a refusal would be audited twice a second)."""
        if not self.session.can(Permission.METRICS_VIEW):
            return
        principal = self.session.principal
        snapshot = self.core.engine_snapshot(principal)
        figures = self.figures
        figures["waiting"].setText(str(snapshot.waiting))
        figures["running"].setText(f"{snapshot.running} of max {snapshot.max_batch_size}")
        figures["occupancy"].setText(f"{snapshot.batch_occupancy * 100:.0f} %")
        figures["decode"].setText(f"{snapshot.decode_tokens_per_second:.1f}")
        figures["prefill"].setText(f"{snapshot.prefill_tokens_per_second:.1f}")
        figures["ttft"].setText(f"{_seconds(snapshot.ttft_p50)} / {_seconds(snapshot.ttft_p99)}")
        figures["latency"].setText(f"{_seconds(snapshot.latency_p50)} / {_seconds(snapshot.latency_p99)}")
        figures["kv"].setText(f"{snapshot.kv_cache_tokens:,} token slots")
        figures["requests"].setText(f"{snapshot.requests_finished} / {snapshot.requests_failed} / {snapshot.requests_cancelled}")
        figures["oom"].setText(str(snapshot.oom_backoffs))
        figures["decoder"].setText(snapshot.decoder or "–")
        mode = "adapting" if self.core.engine_settings.threads == 0 else "pinned"
        figures["threads"].setText(f"{snapshot.intra_op_threads} ({mode})" if snapshot.intra_op_threads else "–")
        figures["decoder"].setToolTip("lean: the engine's own forward pass for Llama-family models; compiled: through "
                                      "torch.compile (the engine.compile setting). Others run transformers' forward.")
        if snapshot.max_batch_size != self.max_batch_size.value():  # adaptive mode or an OOM back-off moved it
            self.max_batch_size.blockSignals(True)
            self.max_batch_size.setValue(snapshot.max_batch_size)
            self.max_batch_size.blockSignals(False)
        notices = self.core.engine_notices(principal)
        if len(notices) != self._notices_shown:
            self._notices_shown = len(notices)
            self.notice_list.clear()
            self.notice_list.addItems([f"{time.strftime('%H:%M:%S', time.localtime(at))}  {message}" for at, message in notices])

    # --- quality table -----------------------------------------------------------------------------------
    def _model_loaded(self, info: LoadedModelInfo) -> None:
        self.measure_button.setEnabled(True)
        self._last_tokens_per_second = None
        self._row_for(info)

    def _reply_finished(self, _request_id: int, result: GenerationResult) -> None:
        info = self.adapter.model_info
        if info is None or not result.tokens_per_second or result.cached:
            return
        self._last_tokens_per_second = result.tokens_per_second
        self.quality_table.setItem(self._row_for(info), 4, QTableWidgetItem(f"{result.tokens_per_second:.1f}"))

    def _measure(self) -> None:
        self.measure_button.setEnabled(False)
        self.quality_status.setText("Measuring perplexity…")
        self.adapter.measure_perplexity()

    def _perplexity_measured(self, info: LoadedModelInfo, value: float) -> None:
        self.measure_button.setEnabled(self.adapter.model_info is not None)
        self.quality_status.setText(f"{info.name} at {info.precision}: perplexity {value:.2f}")
        self.quality_table.setItem(self._row_for(info), 3, QTableWidgetItem(f"{value:.2f}"))

    def _perplexity_failed(self, message: str) -> None:
        self.measure_button.setEnabled(self.adapter.model_info is not None)
        self.quality_status.setText(f"⚠ {message}")

    def _row_for(self, info: LoadedModelInfo) -> int:
        key = (info.path, info.precision, info.device)
        if key not in self._rows:
            row = self.quality_table.rowCount()
            self.quality_table.insertRow(row)
            self._rows[key] = row
            for column, text in enumerate((info.name, f"{info.precision} · {info.device}", format_size(info.weight_bytes), "–", "–")):
                self.quality_table.setItem(row, column, QTableWidgetItem(text))
        return self._rows[key]
