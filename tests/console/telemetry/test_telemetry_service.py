"""The telemetry service samples system and engine figures on its thread into an hour of ring buffers."""

from __future__ import annotations

import csv
import math
import threading

import psutil
import pytest

from console.telemetry import GpuSampler, InvalidTelemetrySetting, TelemetryHistory, TelemetryService
from console.telemetry.csv_export import export_csv
from console.telemetry.errors import TelemetryExportFailed
from engine import GenerationRequest, SamplingParams
from tests.fake_nvml import FakeGpu, FakeNvml


def no_gpu() -> GpuSampler:
    return GpuSampler(nvml=FakeNvml(driver_loaded=False))


# --- ring buffers -------------------------------------------------------------------------------------------
def test_history_keeps_only_the_newest_samples_oldest_first():
    history = TelemetryHistory(capacity=3)
    for second in range(5):
        history.append(100.0 + second, {"x": second})
    times, series = history.window()
    assert times.tolist() == [102.0, 103.0, 104.0] and series["x"].tolist() == [2.0, 3.0, 4.0]


def test_history_window_returns_the_last_seconds_only():
    history = TelemetryHistory(capacity=100)
    for second in range(10):
        history.append(float(second), {"x": second * 10})
    times, series = history.window(3.0)
    assert times.tolist() == [6.0, 7.0, 8.0, 9.0] and series["x"].tolist() == [60.0, 70.0, 80.0, 90.0]


def test_a_series_that_appears_later_or_misses_a_sample_reads_nan_there():
    history = TelemetryHistory(capacity=10)
    history.append(1.0, {"x": 1})
    history.append(2.0, {"x": 2, "y": 20})
    history.append(3.0, {"x": None, "y": 30})
    _, series = history.window(names=["x", "y", "never"])
    assert [math.isnan(v) for v in series["x"]] == [False, False, True]
    assert [math.isnan(v) for v in series["y"]] == [True, False, False]
    assert all(math.isnan(v) for v in series["never"]) and len(series["never"]) == 3
    assert history.latest("y") == 30.0 and history.latest("x") is None


def test_resizing_keeps_the_newest_samples():
    history = TelemetryHistory(capacity=5)
    for second in range(5):
        history.append(float(second), {"x": second})
    history.resize(3)
    history.append(5.0, {"x": 5})
    assert history.window()[1]["x"].tolist() == [3.0, 4.0, 5.0]
    history.resize(6)
    history.append(6.0, {"x": 6})
    assert history.window()[1]["x"].tolist() == [3.0, 4.0, 5.0, 6.0]


def test_buffers_hold_an_hour_at_the_interval():
    service = TelemetryService(gpu_sampler=no_gpu())
    assert service.history.capacity == 3600
    service.set_interval(0.1)
    assert service.history.capacity == 36_000


# --- the service ----------------------------------------------------------------------------------------------
def test_system_figures_cover_every_core_ram_and_this_process():
    frame = TelemetryService(gpu_sampler=no_gpu()).sample_once()
    system = frame.system
    assert len(system.cpu_percent_per_core) == psutil.cpu_count()
    assert all(0.0 <= percent <= 100.0 for percent in system.cpu_percent_per_core)
    assert 0 < system.ram_used_bytes < system.ram_total_bytes
    assert system.process_rss_bytes == pytest.approx(psutil.Process().memory_info().rss, rel=0.5)


def test_gpu_figures_land_in_per_gpu_series():
    nvml = FakeNvml(FakeGpu(utilization=42), FakeGpu(utilization=7))
    service = TelemetryService(gpu_sampler=GpuSampler(nvml=nvml))
    service.sample_once()
    nvml.set(0, utilization=43)
    service.sample_once()
    _, series = service.history.window(names=["gpu0_utilization_percent", "gpu1_utilization_percent"])
    assert series["gpu0_utilization_percent"].tolist() == [42.0, 43.0]
    assert series["gpu1_utilization_percent"].tolist() == [7.0, 7.0]


def test_the_thread_samples_until_stopped():
    service = TelemetryService(gpu_sampler=no_gpu(), interval_s=0.1)
    three_samples = threading.Event()
    service.add_sample_listener(lambda _frame: len(service.history) >= 3 and three_samples.set())
    service.start()
    try:
        assert three_samples.wait(timeout=10)
    finally:
        service.close()
    assert not service.running
    count = service.history.appended
    service.stop()  # a second stop is harmless
    assert service.history.appended == count


@pytest.mark.parametrize("interval", [0.05, 0, -1, 61, "1"])
def test_an_interval_outside_100_ms_to_60_s_is_refused_with_the_range(interval):
    service = TelemetryService(gpu_sampler=no_gpu())
    with pytest.raises(InvalidTelemetrySetting, match="between 100 ms and 60 s"):
        service.set_interval(interval)
    assert service.interval_s == 1.0


def test_a_failing_listener_does_not_stop_the_others():
    service = TelemetryService(gpu_sampler=no_gpu())
    seen = []
    service.add_sample_listener(lambda _frame: 1 / 0)
    service.add_sample_listener(seen.append)
    frame = service.sample_once()
    assert seen == [frame]


def test_engine_figures_follow_real_generation(tiny_engine):
    service = TelemetryService(tiny_engine.snapshot, gpu_sampler=no_gpu())
    before = service.sample_once()
    assert before.engine.requests_finished == 0
    params = SamplingParams(temperature=0, max_new_tokens=8, ignore_eos=True)
    tiny_engine.generate(GenerationRequest(prompt="hello world", params=params), timeout=60)
    after = service.sample_once()
    assert after.engine.requests_finished == 1
    assert after.engine.decode_tokens_per_second > 0
    assert after.engine.latency_p99 is not None and after.engine.ttft_p50 is not None
    assert service.history.latest("requests_finished") == 1.0
    assert service.history.latest("latency_p99_s") == pytest.approx(after.engine.latency_p99)


def test_an_engine_snapshot_failure_keeps_the_other_figures():
    def broken():
        raise RuntimeError("model swapping")

    frame = TelemetryService(broken, gpu_sampler=no_gpu()).sample_once()
    assert frame.engine is None and frame.system.ram_total_bytes > 0


# --- CSV export -----------------------------------------------------------------------------------------------
def test_csv_export_writes_one_row_per_sample_with_units_in_the_headers(tmp_path):
    nvml = FakeNvml(FakeGpu(utilization=64))
    service = TelemetryService(gpu_sampler=GpuSampler(nvml=nvml))
    for _ in range(3):
        service.sample_once()
    path = tmp_path / "telemetry.csv"
    assert export_csv(service.history, path) == 3
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == 3
    assert rows[0]["gpu0_utilization_percent"] == "64"
    assert rows[0]["time_utc"].endswith("+00:00") and float(rows[0]["timestamp_s"]) > 0
    assert float(rows[-1]["ram_total_bytes"]) > 0


def test_csv_export_to_an_unwritable_place_says_so(tmp_path):
    service = TelemetryService(gpu_sampler=no_gpu())
    service.sample_once()
    with pytest.raises(TelemetryExportFailed, match="Choose another folder"):
        export_csv(service.history, tmp_path / "missing-folder" / "telemetry.csv")
