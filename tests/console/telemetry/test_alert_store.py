"""Alerts that fire are kept in the database, through the telemetry the core builds and the window adapts."""

from __future__ import annotations

import pytest

from console.telemetry.gpu_sampler import GpuSampler
from tests.access_helpers import admin_core
from tests.fake_nvml import FakeGpu, FakeNvml
from ui.adapters.telemetry_adapter import TelemetryAdapter


def test_a_firing_alert_is_stored_in_the_database(qtbot, tmp_path):
    core, admin = admin_core(tmp_path / "data")
    nvml = FakeNvml(FakeGpu(utilization=50))
    adapter = TelemetryAdapter.for_core(core, lambda: admin, gpu_sampler=GpuSampler(nvml=nvml), interval_s=60)
    try:
        for utilization in (95, 96, 97):
            nvml.set(0, utilization=utilization)
            adapter.service.sample_once()
        stored = core.telemetry.alert_store.recent()
        assert stored and stored[0]["state"] == "firing" and "GPU utilisation > 90 %" in stored[0]["text"]
    finally:
        adapter.shutdown()
        core.shutdown()


def test_the_stored_telemetry_interval_applies_at_start(qtbot, tmp_path):
    core, admin = admin_core(tmp_path / "data")
    core.settings.set(admin, "telemetry.interval_s", 2.5)
    adapter = TelemetryAdapter.for_core(core, lambda: admin, gpu_sampler=GpuSampler(nvml=FakeNvml(FakeGpu())))
    try:
        assert adapter.service.interval_s == 2.5
    finally:
        adapter.shutdown()
        core.shutdown()


def test_edited_alert_rules_are_stored_and_used_at_the_next_start(qtbot, tmp_path):
    import dataclasses

    from console.telemetry.alerts import DEFAULT_RULES

    core, admin = admin_core(tmp_path / "data")
    sampler = GpuSampler(nvml=FakeNvml(FakeGpu()))
    adapter = TelemetryAdapter.for_core(core, lambda: admin, gpu_sampler=sampler, interval_s=60)
    stricter = [dataclasses.replace(DEFAULT_RULES[0], threshold=0.25)]
    adapter.set_rules(stricter)
    adapter.shutdown()
    restarted = TelemetryAdapter.for_core(core, lambda: admin, gpu_sampler=sampler, interval_s=60)
    try:
        assert [rule.threshold for rule in restarted.service.alerts.rules] == [0.25]
    finally:
        restarted.shutdown()
        core.shutdown()


def test_a_viewer_cannot_store_alert_rules(qtbot, tmp_path):
    from console.access.control import PermissionDenied
    from console.telemetry.alerts import DEFAULT_RULES
    from tests.access_helpers import core_as

    core, viewer = core_as(tmp_path / "data", "viewer")
    adapter = TelemetryAdapter.for_core(core, lambda: viewer, gpu_sampler=GpuSampler(nvml=FakeNvml(FakeGpu())), interval_s=60)
    try:
        with pytest.raises(PermissionDenied, match="settings:edit"):
            adapter.set_rules(list(DEFAULT_RULES[:1]))
    finally:
        adapter.shutdown()
        core.shutdown()
