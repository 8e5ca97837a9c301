"""A test double at the NVML boundary: the few pynvml functions GpuSampler calls, fed scripted values.

Tests build `FakeNvml(FakeGpu(...), ...)`, pass it as `GpuSampler(nvml=fake)`, then change a GPU's fields
between samples. A field set to UNSUPPORTED raises NVMLError_NotSupported, as a real driver does for a figure
a device cannot report; `FakeNvml(driver_loaded=False)` fails at init the way a machine without a driver does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

UNSUPPORTED = object()
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801 (pynvml's names)
    def __str__(self) -> str:
        return "Not Supported"


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801
    def __str__(self) -> str:
        return "Driver Not Loaded"


@dataclass
class FakeGpu:
    name: str = "NVIDIA Fake A100"
    utilization: object = 0  # percent
    memory_used: object = 1 * 2**30
    memory_total: object = 40 * 2**30
    temperature: object = 40  # °C
    power_mw: object = 60_000
    power_limit_mw: object = 250_000
    sm_clock: object = 1410  # MHz
    memory_clock: object = 1215
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, used bytes)


class FakeNvml:
    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_CLOCK_MEM = NVML_CLOCK_MEM

    def __init__(self, *gpus: FakeGpu, driver_loaded: bool = True):
        self.gpus = list(gpus)
        self.driver_loaded = driver_loaded
        self.initialised = False

    def set(self, index: int, **fields) -> None:
        for name, value in fields.items():
            setattr(self.gpus[index], name, value)

    # --- the pynvml surface ------------------------------------------------------------------------------
    def nvmlInit(self) -> None:  # noqa: N802
        if not self.driver_loaded:
            raise NVMLError_DriverNotLoaded()
        self.initialised = True

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:  # noqa: N802
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> str:  # noqa: N802
        return self._value(gpu.name)

    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGpu):  # noqa: N802
        return SimpleNamespace(gpu=self._value(gpu.utilization), memory=0)

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu):  # noqa: N802
        used, total = self._value(gpu.memory_used), self._value(gpu.memory_total)
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> int:  # noqa: N802
        assert sensor == NVML_TEMPERATURE_GPU
        return self._value(gpu.temperature)

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:  # noqa: N802
        return self._value(gpu.power_mw)

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:  # noqa: N802
        return self._value(gpu.power_limit_mw)

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, clock: int) -> int:  # noqa: N802
        return self._value({NVML_CLOCK_SM: gpu.sm_clock, NVML_CLOCK_MEM: gpu.memory_clock}[clock])

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu):  # noqa: N802
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in gpu.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, gpu: FakeGpu):  # noqa: N802
        return []

    def _value(self, value):
        if not self.initialised:
            raise NVMLError("Uninitialized")
        if value is UNSUPPORTED:
            raise NVMLError_NotSupported()
        return value
