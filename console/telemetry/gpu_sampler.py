"""NVIDIA GPU figures through NVML (the `pynvml` module of nvidia-ml-py), one `GpuSample` per device.

No driver, no library or no device is a normal state: `available` is False and `status` says
"no NVIDIA GPU detected". A field the device or driver cannot report is None rather than an error, the way
nvitop degrades. The NVML module is injected so tests can feed scripted values (tests/fake_nvml.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

import psutil

NO_GPU_MESSAGE = "no NVIDIA GPU detected"


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    used_memory_bytes: int | None


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    utilization_percent: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    sm_clock_mhz: float | None
    memory_clock_mhz: float | None
    processes: tuple[GpuProcess, ...] = ()

    @property
    def memory_percent(self) -> float | None:
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes


def _load_pynvml():
    try:
        import pynvml
    except ImportError:  # nvidia-ml-py is a dependency, but a broken install must not stop the app
        return None
    return pynvml


class GpuSampler:
    """Opens NVML once; `sample()` reads every device. Call `close()` when done."""

    def __init__(self, nvml: Any | None = None):
        self._nvml = nvml if nvml is not None else _load_pynvml()
        self._handles: list[tuple[int, str, Any]] = []
        self._lock = threading.Lock()
        self._process_names: dict[int, str] = {}
        self.status = NO_GPU_MESSAGE
        self.reason: str | None = None  # why there is no GPU, when NVML said
        self.available = False
        if self._nvml is None:
            self._no_gpu("the nvidia-ml-py package is not installed")
            return
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as error:
            self._no_gpu(str(error))
            self._nvml = None
            return
        try:
            count = self._nvml.nvmlDeviceGetCount()
            for index in range(count):
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                name = self._read(self._nvml.nvmlDeviceGetName, handle)
                if isinstance(name, bytes):
                    name = name.decode(errors="replace")
                self._handles.append((index, name or f"GPU {index}", handle))
        except self._nvml.NVMLError as error:
            self._no_gpu(str(error))
            self._handles = []
        if self._handles:
            self.available = True
            self.status = ", ".join(f"GPU {index}: {name}" for index, name, _ in self._handles)

    def _no_gpu(self, reason: str) -> None:
        self.reason = reason
        self.status = f"{NO_GPU_MESSAGE} ({reason})"

    @property
    def device_names(self) -> list[str]:
        return [name for _, name, _ in self._handles]

    def sample(self) -> tuple[GpuSample, ...]:
        with self._lock:
            if self._nvml is None:
                return ()
            return tuple(self._sample_device(index, name, handle) for index, name, handle in self._handles)

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                self._read(self._nvml.nvmlShutdown)
                self._nvml = None
                self._handles = []

    # --- one device --------------------------------------------------------------------------------------
    def _sample_device(self, index: int, name: str, handle: Any) -> GpuSample:
        nvml = self._nvml
        utilization = self._read(nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = self._read(nvml.nvmlDeviceGetMemoryInfo, handle)
        power_mw = self._read(nvml.nvmlDeviceGetPowerUsage, handle)
        limit_mw = self._read(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        return GpuSample(
            index=index,
            name=name,
            utilization_percent=_number(getattr(utilization, "gpu", None)),
            memory_used_bytes=_integer(getattr(memory, "used", None)),
            memory_total_bytes=_integer(getattr(memory, "total", None)),
            temperature_c=_number(self._read(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)),
            power_w=None if power_mw is None else power_mw / 1000.0,
            power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
            sm_clock_mhz=_number(self._read(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)),
            memory_clock_mhz=_number(self._read(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM)),
            processes=self._processes(handle),
        )

    def _processes(self, handle: Any) -> tuple[GpuProcess, ...]:
        found: dict[int, GpuProcess] = {}
        for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            function = getattr(self._nvml, query, None)
            for process in (self._read(function, handle) if function else None) or ():
                pid = int(process.pid)
                used = _integer(getattr(process, "usedGpuMemory", None))
                if pid not in found or (used or 0) > (found[pid].used_memory_bytes or 0):
                    found[pid] = GpuProcess(pid, self._process_name(pid), used)
        return tuple(sorted(found.values(), key=lambda p: -(p.used_memory_bytes or 0)))

    def _process_name(self, pid: int) -> str:
        if len(self._process_names) > 1024:  # pids get reused; forget old ones now and then
            self._process_names.clear()
        if pid not in self._process_names:
            try:
                self._process_names[pid] = psutil.Process(pid).name()
            except (psutil.Error, OSError):  # gone, or another user's process in a container
                return f"pid {pid}"
        return self._process_names[pid]

    def _read(self, function: Callable, *args):
        """One NVML call; a field this device or driver cannot report reads as None."""
        try:
            return function(*args)
        except self._nvml.NVMLError:
            return None


def _number(value) -> float | None:
    return None if value is None else float(value)


def _integer(value) -> int | None:
    return None if value is None else int(value)
