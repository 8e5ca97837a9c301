"""The telemetry service: one thread samples GPU, system and engine figures at a settable interval, appends them
to the last hour's ring buffers, evaluates the alert rules and tells listeners.

Listeners are called on the sampling thread; the GUI's `TelemetryAdapter` turns them into Qt signals.
`sample_once()` is the same step without the thread, for tests and scripts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from console.telemetry.alert_log import AlertLog
from console.telemetry.alerts import DEFAULT_RULES, AlertEvaluator, AlertEvent, AlertRule
from console.telemetry.errors import InvalidTelemetrySetting
from console.telemetry.frame import TelemetryFrame
from console.telemetry.gpu_sampler import GpuSampler
from console.telemetry.history import TelemetryHistory, capacity_for
from console.telemetry.system_sampler import SystemSampler
from engine.metrics import EngineSnapshot

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0
MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 60.0
HISTORY_S = 3600.0

SampleListener = Callable[[TelemetryFrame], None]
AlertListener = Callable[[AlertEvent], None]

__all__ = ["InvalidTelemetrySetting", "TelemetryService", "DEFAULT_INTERVAL_S", "MIN_INTERVAL_S", "MAX_INTERVAL_S"]


def check_interval(interval_s: float) -> float:
    if not isinstance(interval_s, (int, float)) or not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        raise InvalidTelemetrySetting(
            f"The sampling interval must be between {MIN_INTERVAL_S * 1000:.0f} ms and {MAX_INTERVAL_S:.0f} s, "
            f"not {interval_s!r} s."
        )
    return float(interval_s)


class TelemetryService:
    def __init__(
        self,
        engine_snapshot: Callable[[], EngineSnapshot | None] | None = None,
        *,
        gpu_sampler: GpuSampler | None = None,
        system_sampler: SystemSampler | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        history_s: float = HISTORY_S,
        rules: Iterable[AlertRule] = DEFAULT_RULES,
        alert_log: AlertLog | None = None,
    ):
        self._interval_s = check_interval(interval_s)
        self._history_s = history_s
        self._engine_snapshot = engine_snapshot
        self.gpu = gpu_sampler if gpu_sampler is not None else GpuSampler()
        self.system = system_sampler if system_sampler is not None else SystemSampler()
        self.history = TelemetryHistory(capacity_for(history_s, self._interval_s))
        self.alerts = AlertEvaluator(rules)
        self.alert_log = alert_log if alert_log is not None else AlertLog()
        self._sample_listeners: list[SampleListener] = []
        self._alert_listeners: list[AlertListener] = []
        self._latest: TelemetryFrame | None = None
        self._sample_lock = threading.Lock()  # one sample at a time: the thread and sample_once() callers
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- settings ----------------------------------------------------------------------------------------
    @property
    def interval_s(self) -> float:
        return self._interval_s

    def set_interval(self, interval_s: float) -> None:
        """Sample every `interval_s` seconds (0.1 to 60) from the next sample on; the buffers still hold an hour."""
        interval_s = check_interval(interval_s)
        with self._condition:
            self._interval_s = interval_s
            self.history.resize(capacity_for(self._history_s, interval_s))
            self._condition.notify_all()

    def set_rules(self, rules: Iterable[AlertRule]) -> None:
        """Replace the alert rules (InvalidAlertRule leaves the old ones in place)."""
        for event in self.alerts.set_rules(rules, time.time()):
            self._publish_alert(event)

    # --- listeners ---------------------------------------------------------------------------------------
    def add_sample_listener(self, listener: SampleListener) -> None:
        self._sample_listeners.append(listener)

    def add_alert_listener(self, listener: AlertListener) -> None:
        self._alert_listeners.append(listener)

    # --- sampling ----------------------------------------------------------------------------------------
    @property
    def latest(self) -> TelemetryFrame | None:
        return self._latest

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sample_once(self) -> TelemetryFrame:
        """Take one sample, store it, evaluate the alerts and tell the listeners; returns the sample."""
        with self._sample_lock:
            frame = TelemetryFrame(time.time(), self.system.sample(), self.gpu.sample(), self._engine_figures())
            self.history.append(frame.timestamp, frame.values())
            self._latest = frame
            events = self.alerts.evaluate(frame)
            for listener in self._sample_listeners:
                self._call(listener, frame)
            for event in events:
                self._publish_alert(event)
            return frame

    def start(self) -> None:
        if self.running:
            return
        with self._condition:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llm-console-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop the thread and release NVML."""
        self.stop()
        self.gpu.close()

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self.sample_once()
            except Exception:  # a sampler bug must not end telemetry silently
                log.exception("telemetry sample failed")
            with self._condition:
                # Re-read the interval each time round: set_interval() wakes this wait.
                while not self._stopping and (remaining := started + self._interval_s - time.monotonic()) > 0:
                    self._condition.wait(remaining)
                if self._stopping:
                    return

    def _engine_figures(self) -> EngineSnapshot | None:
        if self._engine_snapshot is None:
            return None
        try:
            return self._engine_snapshot()
        except Exception:  # the engine may be swapping models; the sample keeps its system and GPU figures
            log.exception("engine snapshot failed")
            return None

    def _publish_alert(self, event: AlertEvent) -> None:
        self.alert_log.record(event)
        for listener in self._alert_listeners:
            self._call(listener, event)

    @staticmethod
    def _call(listener, argument) -> None:
        try:
            listener(argument)
        except Exception:  # one broken listener must not starve the others
            log.exception("telemetry listener failed")
