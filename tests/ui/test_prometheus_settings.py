"""The window starts /metrics from the stored settings: loopback only, unless an admin allowed the network."""

from __future__ import annotations

import socket

import pytest

from console.telemetry import GpuSampler
from tests.access_helpers import admin_core
from tests.fake_nvml import FakeGpu, FakeNvml
from ui.adapters.telemetry_adapter import TelemetryAdapter


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def core(tmp_path):
    instance = admin_core(tmp_path / "data")
    for key, value in (("prometheus.enabled", True), ("prometheus.port", free_port()), ("prometheus.host", "0.0.0.0")):
        instance.settings.set(instance.session, key, value)
    yield instance
    instance.shutdown()


@pytest.fixture
def adapter_for(qtbot):
    made = []

    def build(core):
        made.append(TelemetryAdapter.for_core(core, gpu_sampler=GpuSampler(nvml=FakeNvml(FakeGpu()))))
        return made[-1]

    yield build
    for adapter in made:
        adapter.shutdown()


def test_stored_settings_for_all_interfaces_do_not_serve_without_the_network_allowed(core, adapter_for):
    adapter = adapter_for(core)
    assert adapter.exporter is None


def test_allowing_the_network_serves_on_all_interfaces_and_is_audited(core, adapter_for):
    core.settings.set(core.session, "prometheus.allow_remote", True)
    adapter = adapter_for(core)
    assert adapter.exporter is not None and adapter.exporter.host == "0.0.0.0"
    actions = [entry.action for entry in core.audit_entries()]
    assert "telemetry.prometheus_remote" in actions
    change = next(e for e in core.audit_entries() if e.target == "prometheus.allow_remote")
    assert change.action == "settings.change"
