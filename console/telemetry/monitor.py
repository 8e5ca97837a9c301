"""The telemetry of one core, headless: the sampling service, its alerts kept in the database, the optional
Prometheus endpoint, and saving edited alert rules as a setting (for the caller who edits them). Built by
`ConsoleCore.start_telemetry`; the GUI's `TelemetryAdapter` only turns its callbacks into signals.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from console.access.principal import Principal
from console.telemetry.alert_store import AlertStore
from console.telemetry.alerts import AlertRule
from console.telemetry.errors import TelemetryError
from console.telemetry.prometheus_exporter import DEFAULT_HOST, PrometheusExporter, is_loopback
from console.telemetry.service import TelemetryService

if TYPE_CHECKING:
    from console.settings.store import SettingsStore


class TelemetryMonitor:
    def __init__(self, service: TelemetryService, alert_store: AlertStore | None = None,
                 settings: SettingsStore | None = None):
        """Without `settings`, edited rules apply to this run only; without `alert_store`, alerts stay in memory."""
        self.service = service
        self.alert_store = alert_store
        self._settings = settings
        self.exporter: PrometheusExporter | None = None
        self.prometheus_problem = ""  # why the endpoint asked for in the settings did not start
        if alert_store is not None:
            service.alert_log.sink = alert_store.record

    def set_rules(self, principal: Principal | None, rules: list[AlertRule]) -> None:
        """Apply rules; with settings, they are saved first, which needs `settings:edit`."""
        if self._settings is not None:
            self._settings.set(principal, "alerts.rules", [dataclasses.asdict(rule) for rule in rules])
        self.service.set_rules(rules)

    def start_prometheus(self, port: int, host: str = DEFAULT_HOST, allow_remote: bool = False) -> str:
        """Serve /metrics; returns its URL. Raises PrometheusPortInUse / InvalidTelemetrySetting (also for an
        address beyond loopback without `allow_remote`)."""
        self.stop_prometheus()
        try:
            exporter = PrometheusExporter(self.service, port=port, host=host, allow_remote=allow_remote)
            exporter.start()
        except TelemetryError as error:
            self.prometheus_problem = str(error)
            raise
        self.exporter, self.prometheus_problem = exporter, ""
        return exporter.url

    def start_prometheus_from_settings(self, settings: SettingsStore) -> None:
        if not settings.get("prometheus.enabled"):
            return
        host = settings.get("prometheus.host")
        try:
            url = self.start_prometheus(settings.get("prometheus.port"), host, settings.get("prometheus.allow_remote"))
        except TelemetryError:
            return  # kept in prometheus_problem for the dashboard
        if not is_loopback(host):  # the figures leave this machine: on the record (who allowed it is, as a setting)
            settings.guard.record(None, "telemetry.prometheus_remote", url)

    def stop_prometheus(self) -> bool:
        """Stop serving; True when it was serving."""
        exporter, self.exporter = self.exporter, None
        if exporter is None:
            return False
        exporter.stop()
        return True

    def shutdown(self) -> None:
        """Stop serving and sampling; safe to call twice."""
        self.stop_prometheus()
        self.service.close()
