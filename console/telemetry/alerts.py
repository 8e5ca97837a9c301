"""Alert rules over telemetry samples: a metric, a comparison, a threshold, how many consecutive samples, an
optional condition ("while requests are queued") and advice. The evaluator turns samples into firing and
resolved events; `alert_log.py` keeps them.

A GPU metric is judged per GPU, so one rule can fire for GPU 0 and not for GPU 1.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from console.telemetry.errors import InvalidAlertRule
from console.telemetry.frame import TelemetryFrame

Reading = list[tuple[str, float | None]]  # (subject, value) pairs: ("GPU 0", 93.0), ("Engine", 0.71)


@dataclass(frozen=True)
class AlertMetric:
    label: str
    unit: str
    read: Callable[[TelemetryFrame], Reading]


def _engine(read: Callable) -> Callable[[TelemetryFrame], Reading]:
    return lambda frame: [] if frame.engine is None else [("Engine", read(frame.engine))]


def _per_gpu(read: Callable) -> Callable[[TelemetryFrame], Reading]:
    return lambda frame: [(f"GPU {gpu.index}", read(gpu)) for gpu in frame.gpus]


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


# The engine's request figures are p99s over the requests that finished in the last minute
# (engine.metrics.RECENT_WINDOW_S): a rule on them clears by itself once the slow requests are a minute old.
ALERT_METRICS: dict[str, AlertMetric] = {
    "ttft_p99_ms": AlertMetric("p99 time to first token", "ms", _engine(lambda e: _milliseconds(e.recent_ttft_p99))),
    "inter_token_p99_ms": AlertMetric("p99 time between tokens", "ms",
                                      _engine(lambda e: _milliseconds(e.recent_inter_token_p99))),
    "queue_wait_p99_ms": AlertMetric("p99 queue wait", "ms", _engine(lambda e: _milliseconds(e.recent_queue_wait_p99))),
    "latency_p99_ms": AlertMetric("p99 end-to-end latency", "ms", _engine(lambda e: _milliseconds(e.recent_latency_p99))),
    "requests_waiting": AlertMetric("queued requests", "", _engine(lambda e: e.waiting)),
    "batch_occupancy_percent": AlertMetric("batch occupancy", "%", _engine(lambda e: 100.0 * e.batch_occupancy)),
    "requests_failed": AlertMetric("failed requests", "", _engine(lambda e: e.requests_failed)),
    "gpu_utilization_percent": AlertMetric("GPU utilisation", "%", _per_gpu(lambda g: g.utilization_percent)),
    "gpu_memory_percent": AlertMetric("GPU memory", "%", _per_gpu(lambda g: g.memory_percent)),
    "gpu_temperature_c": AlertMetric("GPU temperature", "°C", _per_gpu(lambda g: g.temperature_c)),
    "gpu_power_w": AlertMetric("GPU power", "W", _per_gpu(lambda g: g.power_w)),
    "cpu_percent": AlertMetric("CPU use", "%", lambda frame: [("System", frame.system.cpu_percent)]),
    "ram_percent": AlertMetric("RAM use", "%", lambda frame: [("System", frame.system.ram_percent)]),
}

CONDITIONS: dict[str, tuple[str, Callable[[TelemetryFrame], bool]]] = {
    "requests_queued": ("while requests are queued", lambda frame: frame.engine is not None and frame.engine.waiting > 0),
}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {">": lambda v, t: v > t, "<": lambda v, t: v < t}


@dataclass(frozen=True)
class AlertRule:
    name: str
    metric: str  # a key of ALERT_METRICS
    comparison: str  # ">" or "<"
    threshold: float
    consecutive_samples: int = 1
    condition: str | None = None  # a key of CONDITIONS
    message: str = ""  # the advice shown when it fires
    enabled: bool = True

    def validate(self) -> None:
        where = f"Alert rule \"{self.name or '(unnamed)'}\""
        if not self.name.strip():
            raise InvalidAlertRule("An alert rule needs a name; type one in the Name column.")
        if self.metric not in ALERT_METRICS:
            raise InvalidAlertRule(f"{where}: unknown metric {self.metric!r}; choose one of {', '.join(ALERT_METRICS)}.")
        if self.comparison not in COMPARISONS:
            raise InvalidAlertRule(f"{where}: the comparison must be '>' or '<', not {self.comparison!r}.")
        if not isinstance(self.threshold, (int, float)) or not math.isfinite(self.threshold):
            raise InvalidAlertRule(f"{where}: the threshold must be a number, not {self.threshold!r}.")
        if not isinstance(self.consecutive_samples, int) or self.consecutive_samples < 1:
            raise InvalidAlertRule(f"{where}: it must fire after 1 or more consecutive samples, not {self.consecutive_samples!r}.")
        if self.condition is not None and self.condition not in CONDITIONS:
            raise InvalidAlertRule(f"{where}: unknown condition {self.condition!r}; choose one of {', '.join(CONDITIONS)}.")

    def describe(self) -> str:
        """'GPU utilisation < 20 % for 3 samples while requests are queued'."""
        metric = ALERT_METRICS[self.metric]
        text = f"{metric.label} {self.comparison} {_format(self.threshold, metric.unit)}"
        if self.consecutive_samples > 1:
            text += f" for {self.consecutive_samples} samples"
        if self.condition:
            text += f" {CONDITIONS[self.condition][0]}"
        return text


# Budgets per request, not per reply: a reply's end-to-end time grows with its length (a 256-token reply takes
# seconds by nature), so the end-to-end rule is there to switch on, not on by default.
DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule("Slow first token", "ttft_p99_ms", ">", 500, 1,
              message="requests wait too long for their first token: lower the max batch size or the max prefill "
                      "tokens per step"),
    AlertRule("Slow token stream", "inter_token_p99_ms", ">", 250, 1,
              message="replies stream slower than 4 tokens/s: lower the max batch size, or look for another "
                      "program using the processor"),
    AlertRule("Long queue wait", "queue_wait_p99_ms", ">", 1000, 1,
              message="requests queue before they start: raise the max batch size, or the machine is past its capacity"),
    AlertRule("GPU saturated", "gpu_utilization_percent", ">", 90, 3,
              message="consider a larger batch or another GPU"),
    AlertRule("GPU starved", "gpu_utilization_percent", "<", 20, 3, condition="requests_queued",
              message="batching is starving the GPU"),
    AlertRule("GPU memory nearly full", "gpu_memory_percent", ">", 95, 1,
              message="the next batch may run out of memory: lower the batch size or the context length"),
    AlertRule("GPU too hot", "gpu_temperature_c", ">", 85, 1,
              message="check the cooling; the GPU will throttle its clocks"),
    AlertRule("Slow replies end to end", "latency_p99_ms", ">", 60_000, 1, enabled=False,
              message="replies take over a minute: lower the max new tokens or the batch size"),
)


# The first release's seed: end-to-end p99 > 500 ms, which fired on every ordinary reply. A stored rule list that
# still holds it unchanged gets today's request rules in its place; every other stored rule is kept as it is.
RETIRED_DEFAULT = AlertRule("High p99 latency", "latency_p99_ms", ">", 500, 1,
                            message="requests wait too long end to end: lower the batch size or the max new tokens")


def replace_retired_default(rules: Iterable[AlertRule]) -> list[AlertRule]:
    rules = list(rules)
    if RETIRED_DEFAULT not in rules:
        return rules
    index = rules.index(RETIRED_DEFAULT)
    names = {rule.name for rule in rules}
    successors = [rule for rule in DEFAULT_RULES if rule.metric.endswith("_p99_ms") and rule.name not in names]
    return rules[:index] + successors + rules[index + 1:]


@dataclass(frozen=True)
class AlertEvent:
    rule: str
    subject: str  # "GPU 0", "Engine", "System"
    state: str  # "firing" or "resolved"
    value: float | None
    threshold: float
    timestamp: float
    text: str  # one line for the status bar and the log

    @property
    def firing(self) -> bool:
        return self.state == "firing"


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "no value"
    number = f"{value:,.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:.2f}"
    return f"{number} {unit}".rstrip()


class AlertEvaluator:
    """Counts consecutive breaches per (rule, subject); fires once at the count, resolves on the first clear sample.

    While an alert fires, its active event follows the metric (`active()` shows the value now, not the value
    it fired with); the log keeps the firing event as it was."""

    def __init__(self, rules: Iterable[AlertRule] = DEFAULT_RULES):
        self._lock = threading.Lock()
        self._rules = self._checked(rules)
        self._streaks: dict[tuple[str, str], int] = {}
        self._active: dict[tuple[str, str], AlertEvent] = {}

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        return self._rules

    def active(self) -> list[AlertEvent]:
        """The firing events of the alerts that have not resolved yet, oldest first."""
        with self._lock:
            return sorted(self._active.values(), key=lambda event: event.timestamp)

    def set_rules(self, rules: Iterable[AlertRule], timestamp: float) -> list[AlertEvent]:
        """Replace the rules (validated first: nothing changes on an error); active alerts resolve and fire
        again under the new rules if they still hold."""
        checked = self._checked(rules)
        with self._lock:
            resolved = [self._resolved(event, None, timestamp, "rules edited") for event in self._active.values()]
            self._rules, self._streaks, self._active = checked, {}, {}
        return resolved

    def evaluate(self, frame: TelemetryFrame) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        with self._lock:
            for rule in self._rules:
                if not rule.enabled:
                    continue
                condition_holds = rule.condition is None or CONDITIONS[rule.condition][1](frame)
                compare = COMPARISONS[rule.comparison]
                seen = set()
                for subject, value in ALERT_METRICS[rule.metric].read(frame):
                    key = (rule.name, subject)
                    seen.add(key)
                    breached = condition_holds and value is not None and compare(value, rule.threshold)
                    events.extend(self._step(rule, key, value, breached, frame.timestamp))
                for key in [k for k in self._active if k[0] == rule.name and k not in seen]:  # subject gone
                    events.extend(self._step(rule, key, None, False, frame.timestamp))
        return events

    def _step(self, rule: AlertRule, key: tuple[str, str], value, breached: bool, timestamp: float) -> list[AlertEvent]:
        if not breached:
            self._streaks.pop(key, None)
            active = self._active.pop(key, None)
            return [] if active is None else [self._resolved(active, value, timestamp)]
        streak = self._streaks[key] = self._streaks.get(key, 0) + 1
        if key in self._active:
            self._active[key] = self._firing(rule, key, value, self._active[key].timestamp)
            return []
        if streak < rule.consecutive_samples:
            return []
        event = self._active[key] = self._firing(rule, key, value, timestamp)
        return [event]

    @staticmethod
    def _firing(rule: AlertRule, key: tuple[str, str], value, timestamp: float) -> AlertEvent:
        text = f"{key[1]}: {rule.describe()} (now {_format(value, ALERT_METRICS[rule.metric].unit)})"
        if rule.message:
            text += f" — {rule.message}"
        return AlertEvent(rule.name, key[1], "firing", value, rule.threshold, timestamp, text)

    def _resolved(self, active: AlertEvent, value, timestamp: float, reason: str | None = None) -> AlertEvent:
        text = f"Resolved: {active.subject}: {active.rule}"
        rule = next((r for r in self._rules if r.name == active.rule), None)
        if reason:
            text += f" ({reason})"
        elif value is not None and rule is not None:
            text += f" (now {_format(value, ALERT_METRICS[rule.metric].unit)})"
        return AlertEvent(active.rule, active.subject, "resolved", value, active.threshold, timestamp, text)

    @staticmethod
    def _checked(rules: Iterable[AlertRule]) -> tuple[AlertRule, ...]:
        rules = tuple(rules)
        names = set()
        for rule in rules:
            rule.validate()
            if rule.name in names:
                raise InvalidAlertRule(f"Two alert rules are named \"{rule.name}\"; give each rule its own name.")
            names.add(rule.name)
        return rules
