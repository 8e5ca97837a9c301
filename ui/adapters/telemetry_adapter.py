"""The Qt side of telemetry: turns the headless `TelemetryMonitor`'s callbacks (on the sampling thread) into
signals emitted on the UI thread (`ThreadRelay`). No widget is touched off it, and nothing is built here: the
core builds the service, the alert store and the Prometheus exporter.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal

from ui.adapters.thread_relay import ThreadRelay

from console.access.principal import Principal
from console.telemetry import AlertRule, PrometheusExporter, TelemetryService
from console.telemetry.errors import TelemetryError
from console.telemetry.monitor import TelemetryMonitor
from console.telemetry.prometheus_exporter import DEFAULT_HOST


class TelemetryAdapter(ThreadRelay):
    sampled = Signal(object)  # TelemetryFrame
    alert = Signal(object)  # AlertEvent, firing or resolved
    prometheus_changed = Signal(bool, str)  # serving, the URL or why not

    def __init__(self, monitor: TelemetryMonitor, principal: Callable[[], Principal | None] = lambda: None,
                 parent: QObject | None = None):
        """`principal()` is who edits the alert rules (the window's signed-in user)."""
        super().__init__(parent)
        self.monitor = monitor
        self.service: TelemetryService = monitor.service
        self._principal = principal
        self.service.add_sample_listener(lambda frame: self.emit_from_worker("sampled", frame))
        self.service.add_alert_listener(lambda event: self.emit_from_worker("alert", event))

    @classmethod
    def for_core(cls, core, principal: Callable[[], Principal | None], parent: QObject | None = None,
                 **options) -> "TelemetryAdapter":
        """Telemetry of the core's engine, sampling at once (options: interval_s, rules, gpu_sampler, …)."""
        return cls(core.start_telemetry(**options), principal, parent)

    @property
    def exporter(self) -> PrometheusExporter | None:
        return self.monitor.exporter

    # --- settings the dashboard changes --------------------------------------------------------------------
    def set_interval(self, interval_s: float) -> None:
        self.service.set_interval(interval_s)

    def set_rules(self, rules: list[AlertRule]) -> None:
        """Apply rules; with the core's settings they are saved first, which needs `settings:edit`."""
        self.monitor.set_rules(self._principal(), rules)

    def start_prometheus(self, port: int, host: str = DEFAULT_HOST) -> str:
        """Serve /metrics; returns its URL. Raises PrometheusPortInUse / InvalidTelemetrySetting (shown as is)."""
        try:
            url = self.monitor.start_prometheus(port, host)
        except TelemetryError as error:
            self.prometheus_changed.emit(False, str(error))
            raise
        self.prometheus_changed.emit(True, url)
        return url

    def stop_prometheus(self) -> None:
        if self.monitor.stop_prometheus():
            self.prometheus_changed.emit(False, "")

    def shutdown(self) -> None:
        """Stop serving and sampling; safe to call twice."""
        self.monitor.shutdown()
