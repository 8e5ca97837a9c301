"""The Qt side of telemetry: owns the TelemetryService and the optional Prometheus exporter and turns the
sampling thread's callbacks into signals emitted on the UI thread (`ThreadRelay`). No widget is touched off it.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ui.adapters.thread_relay import ThreadRelay

from console.core import ConsoleCore
from console.telemetry import AlertRule, PrometheusExporter, TelemetryService
from console.telemetry.errors import TelemetryError
from console.telemetry.prometheus_exporter import DEFAULT_HOST, is_loopback


class TelemetryAdapter(ThreadRelay):
    sampled = Signal(object)  # TelemetryFrame
    alert = Signal(object)  # AlertEvent, firing or resolved
    prometheus_changed = Signal(bool, str)  # serving, the URL or why not

    def __init__(self, service: TelemetryService, parent: QObject | None = None):
        super().__init__(parent)
        self.service = service
        self.exporter: PrometheusExporter | None = None
        self.store_rules = None  # callable(rules) that saves them in the settings, set by for_core
        service.add_sample_listener(lambda frame: self.emit_from_worker("sampled", frame))
        service.add_alert_listener(lambda event: self.emit_from_worker("alert", event))

    @classmethod
    def for_core(cls, core: ConsoleCore, parent: QObject | None = None, **options) -> "TelemetryAdapter":
        """Telemetry of the core's engine, sampling at once (options: interval_s, rules, gpu_sampler, …).

        The stored settings give the interval and whether /metrics is served; alerts are kept in the database."""
        from console.telemetry.alert_store import AlertStore

        import dataclasses

        options.setdefault("interval_s", core.settings.get("telemetry.interval_s"))
        stored_rules = core.settings.get("alerts.rules")
        if stored_rules:
            options.setdefault("rules", [AlertRule(**rule) for rule in stored_rules])
        adapter = cls(TelemetryService(core.engine.snapshot, **options), parent)
        adapter.service.alert_log.sink = AlertStore(core.database).record
        adapter.store_rules = lambda rules: core.settings.set(
            core.session, "alerts.rules", [dataclasses.asdict(rule) for rule in rules])
        adapter.service.start()
        if core.settings.get("prometheus.enabled"):
            host = core.settings.get("prometheus.host")
            try:
                url = adapter.start_prometheus(core.settings.get("prometheus.port"), host,
                                               core.settings.get("prometheus.allow_remote"))
            except TelemetryError:
                pass  # prometheus_changed already carries the reason to the dashboard
            else:
                if not is_loopback(host):  # the figures leave this machine: on the record who allowed it
                    core.guard.record("telemetry.prometheus_remote", url)
        return adapter

    # --- settings the dashboard changes --------------------------------------------------------------------
    def set_interval(self, interval_s: float) -> None:
        self.service.set_interval(interval_s)

    def set_rules(self, rules: list[AlertRule]) -> None:
        """Apply rules; with a store (the window's core), they are saved first, which needs `settings:edit`."""
        if self.store_rules is not None:
            self.store_rules(rules)
        self.service.set_rules(rules)

    def start_prometheus(self, port: int, host: str = DEFAULT_HOST, allow_remote: bool = False) -> str:
        """Serve /metrics; returns its URL. Raises PrometheusPortInUse / InvalidTelemetrySetting (shown as is)."""
        self.stop_prometheus()
        try:
            exporter = PrometheusExporter(self.service, port=port, host=host, allow_remote=allow_remote)
            exporter.start()
        except TelemetryError as error:
            self.prometheus_changed.emit(False, str(error))
            raise
        self.exporter = exporter
        self.prometheus_changed.emit(True, exporter.url)
        return exporter.url

    def stop_prometheus(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None
            self.prometheus_changed.emit(False, "")

    def shutdown(self) -> None:
        """Stop serving and sampling; safe to call twice."""
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None
        self.service.close()
