"""Telemetry starts /metrics from the stored settings: loopback only, unless an admin allowed the network."""

from __future__ import annotations

import socket

import pytest

from console.telemetry import GpuSampler
from tests.access_helpers import admin_core
from tests.fake_nvml import FakeGpu, FakeNvml


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def signed_in(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    for key, value in (("prometheus.enabled", True), ("prometheus.port", free_port()), ("prometheus.host", "0.0.0.0")):
        core.settings.set(admin, key, value)
    yield core, admin
    core.shutdown()


def start(core):
    return core.start_telemetry(gpu_sampler=GpuSampler(nvml=FakeNvml(FakeGpu())), interval_s=60)


def test_stored_settings_for_all_interfaces_do_not_serve_without_the_network_allowed(signed_in):
    core, _admin = signed_in
    monitor = start(core)
    assert monitor.exporter is None
    assert "will not listen on 0.0.0.0" in monitor.prometheus_problem


def test_allowing_the_network_serves_on_all_interfaces_and_is_audited(signed_in):
    core, admin = signed_in
    core.settings.set(admin, "prometheus.allow_remote", True)
    monitor = start(core)
    assert monitor.exporter is not None and monitor.exporter.host == "0.0.0.0"
    entries = core.audit_entries(admin)
    assert "telemetry.prometheus_remote" in [entry.action for entry in entries]
    change = next(e for e in entries if e.target == "prometheus.allow_remote")
    assert change.action == "settings.change" and change.actor == admin.user
