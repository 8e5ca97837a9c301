"""One telemetry sample: system, GPU and engine figures taken together, and its flat named values.

The flat names carry their units (`_percent`, `_bytes`, `_s`, `_c`, `_w`, `_mhz`) and are the series names in
the ring buffers, the columns of the CSV export and the keys the dashboard draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.telemetry.gpu_sampler import GpuSample
from console.telemetry.system_sampler import SystemSample
from engine.metrics import EngineSnapshot

GPU_FIELDS = (
    "utilization_percent",
    "memory_used_bytes",
    "memory_total_bytes",
    "memory_percent",
    "temperature_c",
    "power_w",
    "power_limit_w",
    "sm_clock_mhz",
    "memory_clock_mhz",
)


def gpu_series(index: int, field: str) -> str:
    return f"gpu{index}_{field}"


def cpu_core_series(core: int) -> str:
    return f"cpu{core}_percent"


@dataclass(frozen=True)
class TelemetryFrame:
    timestamp: float  # seconds since the epoch
    system: SystemSample
    gpus: tuple[GpuSample, ...]
    engine: EngineSnapshot | None  # None when no engine is attached

    def values(self) -> dict[str, float | None]:
        system = self.system
        values: dict[str, float | None] = {
            "cpu_percent": system.cpu_percent,
            "cpu_busiest_core_percent": system.busiest_core_percent,
            "ram_used_bytes": system.ram_used_bytes,
            "ram_total_bytes": system.ram_total_bytes,
            "ram_percent": system.ram_percent,
            "process_rss_bytes": system.process_rss_bytes,
        }
        for core, percent in enumerate(system.cpu_percent_per_core):
            values[cpu_core_series(core)] = percent
        for gpu in self.gpus:
            for field in GPU_FIELDS:
                values[gpu_series(gpu.index, field)] = getattr(gpu, field)
        engine = self.engine
        if engine is not None:
            values.update(
                decode_tokens_per_second=engine.decode_tokens_per_second,
                prefill_tokens_per_second=engine.prefill_tokens_per_second,
                ttft_p50_s=engine.ttft_p50,
                ttft_p95_s=engine.ttft_p95,
                ttft_p99_s=engine.ttft_p99,
                latency_p50_s=engine.latency_p50,
                latency_p95_s=engine.latency_p95,
                latency_p99_s=engine.latency_p99,
                requests_waiting=engine.waiting,
                requests_running=engine.running,
                max_batch_size=engine.max_batch_size,
                batch_occupancy_percent=100.0 * engine.batch_occupancy,
                kv_cache_tokens=engine.kv_cache_tokens,
                requests_finished=engine.requests_finished,
                requests_failed=engine.requests_failed,
                requests_cancelled=engine.requests_cancelled,
            )
        return values
