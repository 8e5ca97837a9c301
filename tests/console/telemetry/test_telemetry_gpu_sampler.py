"""The GPU sampler reads every NVML field per device, degrades per field, and treats no GPU as a normal state."""

from __future__ import annotations

import os

from console.telemetry import NO_GPU_MESSAGE, GpuSampler, TelemetryService
from tests.fake_nvml import UNSUPPORTED, FakeGpu, FakeNvml


def test_each_field_is_read_in_the_units_people_use():
    nvml = FakeNvml(FakeGpu(name="NVIDIA Fake H100", utilization=87, memory_used=30 * 2**30, memory_total=80 * 2**30,
                            temperature=71, power_mw=412_500, power_limit_mw=700_000, sm_clock=1980, memory_clock=2619))
    sample = GpuSampler(nvml=nvml).sample()[0]
    assert (sample.index, sample.name, sample.utilization_percent) == (0, "NVIDIA Fake H100", 87.0)
    assert (sample.memory_used_bytes, sample.memory_total_bytes, sample.memory_percent) == (30 * 2**30, 80 * 2**30, 37.5)
    assert (sample.temperature_c, sample.power_w, sample.power_limit_w) == (71.0, 412.5, 700.0)
    assert (sample.sm_clock_mhz, sample.memory_clock_mhz) == (1980.0, 2619.0)


def test_every_gpu_gets_its_own_sample():
    nvml = FakeNvml(FakeGpu(utilization=10), FakeGpu(name="NVIDIA Fake L4", utilization=99))
    sampler = GpuSampler(nvml=nvml)
    assert sampler.available and sampler.device_names == ["NVIDIA Fake A100", "NVIDIA Fake L4"]
    assert [(s.index, s.utilization_percent) for s in sampler.sample()] == [(0, 10.0), (1, 99.0)]
    assert sampler.status == "GPU 0: NVIDIA Fake A100, GPU 1: NVIDIA Fake L4"


def test_a_field_the_device_cannot_report_is_none_and_the_rest_still_arrive():
    nvml = FakeNvml(FakeGpu(power_mw=UNSUPPORTED, power_limit_mw=UNSUPPORTED, temperature=UNSUPPORTED, utilization=55))
    sample = GpuSampler(nvml=nvml).sample()[0]
    assert (sample.power_w, sample.power_limit_w, sample.temperature_c) == (None, None, None)
    assert sample.utilization_percent == 55.0 and sample.memory_used_bytes == 2**30


def test_processes_on_the_gpu_are_listed_with_their_memory_biggest_first():
    own_pid = os.getpid()
    nvml = FakeNvml(FakeGpu(processes=[(999_999_999, 2**20), (own_pid, 3 * 2**30), (42, None)]))
    processes = GpuSampler(nvml=nvml).sample()[0].processes
    assert [(p.pid, p.used_memory_bytes) for p in processes] == [(own_pid, 3 * 2**30), (999_999_999, 2**20), (42, None)]
    assert processes[0].name  # this process's real name through psutil
    assert processes[1].name == "pid 999999999"  # a process that does not exist here


def test_no_driver_is_a_normal_state_named_no_nvidia_gpu_detected():
    sampler = GpuSampler(nvml=FakeNvml(driver_loaded=False))
    assert not sampler.available
    assert sampler.status == f"{NO_GPU_MESSAGE} (Driver Not Loaded)"
    assert sampler.sample() == ()


def test_a_driver_without_devices_is_also_no_gpu():
    sampler = GpuSampler(nvml=FakeNvml())
    assert not sampler.available and sampler.status == NO_GPU_MESSAGE and sampler.sample() == ()


def test_without_a_gpu_the_service_still_samples_system_figures():
    service = TelemetryService(gpu_sampler=GpuSampler(nvml=FakeNvml(driver_loaded=False)))
    frame = service.sample_once()
    assert frame.gpus == ()
    assert frame.system.ram_total_bytes > 0 and frame.system.process_rss_bytes > 0
    assert not any(name.startswith("gpu") for name in service.history.names())


def test_closing_shuts_nvml_down():
    nvml = FakeNvml(FakeGpu())
    sampler = GpuSampler(nvml=nvml)
    sampler.close()
    assert not nvml.initialised and sampler.sample() == ()
