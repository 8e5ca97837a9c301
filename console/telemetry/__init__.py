"""Live telemetry without a screen: GPU (NVML), system (psutil) and engine figures sampled on one thread into
ring buffers, alert rules evaluated on every sample, and an opt-in Prometheus endpoint.

`ui/telemetry_adapter.py` turns the service's callbacks into Qt signals; `ui/telemetry_panel.py` draws them.
"""

from console.telemetry.alert_log import AlertLog
from console.telemetry.alerts import DEFAULT_RULES, AlertEvaluator, AlertEvent, AlertRule, InvalidAlertRule
from console.telemetry.frame import TelemetryFrame
from console.telemetry.gpu_sampler import NO_GPU_MESSAGE, GpuProcess, GpuSample, GpuSampler
from console.telemetry.history import TelemetryHistory
from console.telemetry.prometheus_exporter import PrometheusExporter, PrometheusPortInUse
from console.telemetry.service import InvalidTelemetrySetting, TelemetryService
from console.telemetry.system_sampler import SystemSample, SystemSampler

__all__ = [
    "AlertEvaluator",
    "AlertEvent",
    "AlertLog",
    "AlertRule",
    "DEFAULT_RULES",
    "GpuProcess",
    "GpuSample",
    "GpuSampler",
    "InvalidAlertRule",
    "InvalidTelemetrySetting",
    "NO_GPU_MESSAGE",
    "PrometheusExporter",
    "PrometheusPortInUse",
    "SystemSample",
    "SystemSampler",
    "TelemetryFrame",
    "TelemetryHistory",
    "TelemetryService",
]
