"""CPU per core, RAM and this process's resident memory through psutil; never blocks (no sampling interval).

CPU use is measured between two samples from this sampler's own previous CPU times (psutil's
`cpu_percent()` keeps one window for the whole process, which two samplers would share), so the first sample
covers the time since construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class SystemSample:
    cpu_percent_per_core: tuple[float, ...]
    ram_used_bytes: int
    ram_total_bytes: int
    process_rss_bytes: int

    @property
    def cpu_percent(self) -> float:
        cores = self.cpu_percent_per_core
        return sum(cores) / len(cores) if cores else 0.0

    @property
    def busiest_core_percent(self) -> float:
        return max(self.cpu_percent_per_core, default=0.0)

    @property
    def ram_percent(self) -> float:
        return 100.0 * self.ram_used_bytes / self.ram_total_bytes if self.ram_total_bytes else 0.0


class SystemSampler:
    def __init__(self) -> None:
        self._process = psutil.Process()
        self._previous_times = psutil.cpu_times(percpu=True)

    @property
    def core_count(self) -> int:
        return psutil.cpu_count() or 1

    def sample(self) -> SystemSample:
        memory = psutil.virtual_memory()
        return SystemSample(
            cpu_percent_per_core=self._cpu_percent_per_core(),
            ram_used_bytes=int(memory.total - memory.available),
            ram_total_bytes=int(memory.total),
            process_rss_bytes=int(self._process.memory_info().rss),
        )

    def _cpu_percent_per_core(self) -> tuple[float, ...]:
        current = psutil.cpu_times(percpu=True)
        previous, self._previous_times = self._previous_times, current
        return tuple(_busy_percent(before, after) for before, after in zip(previous, current))


def _busy_percent(before, after) -> float:
    def split(times) -> tuple[float, float]:
        idle = times.idle + getattr(times, "iowait", 0.0)
        # Linux counts guest time inside user and nice time as well; don't count it twice.
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        return total - idle, idle

    busy_before, idle_before = split(before)
    busy_after, idle_after = split(after)
    busy, idle = max(0.0, busy_after - busy_before), max(0.0, idle_after - idle_before)
    return 100.0 * busy / (busy + idle) if busy + idle > 0 else 0.0
