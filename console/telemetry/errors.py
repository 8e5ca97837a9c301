"""Errors a user can cause in telemetry (a bad setting, an invalid alert rule, a taken port, an unwritable file),
each with a message a person can act on."""

from __future__ import annotations

from console.errors import ConsoleError


class TelemetryError(ConsoleError):
    """A telemetry setting or action was refused."""


class InvalidTelemetrySetting(TelemetryError):
    """A sampling interval or port outside what the service accepts."""


class InvalidAlertRule(TelemetryError):
    """An alert rule with an unknown metric, a bad comparison, a non-number threshold or no samples."""


class PrometheusPortInUse(TelemetryError):
    """Another program (or another LLM Console) already listens on the Prometheus port."""


class TelemetryExportFailed(TelemetryError):
    """The CSV or PNG file could not be written."""
