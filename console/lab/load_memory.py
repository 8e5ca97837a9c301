"""The memory check before every load and the record after it: the estimate (weights, KV cache, overhead,
margin) against the free memory, the refusal a person can act on, and the measured figure stored beside the
estimate. The runtime overhead of a device is measured by its first load in a process and reused."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psutil
import torch

from console.errors import MemoryWontFit
from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso
from console.units import format_size
from engine.weights.memory_estimate import MemoryEstimate, ModelShape, read_model_shape


def describe_estimate(estimate: MemoryEstimate) -> str:
    """"needs about 1.2 GB of 20.1 GB free (weights …, KV cache …, overhead …, margin …)"."""
    free = f" of {format_size(estimate.free_bytes)} free" if estimate.free_bytes is not None else ""
    return (f"needs about {format_size(estimate.total_bytes)}{free} (weights {format_size(estimate.weight_bytes)}, "
            f"KV cache {format_size(estimate.kv_cache_bytes)} for {estimate.sequences} × {estimate.context_tokens:,} "
            f"tokens, overhead {format_size(estimate.overhead_bytes)}, margin {format_size(estimate.margin_bytes)})")


def refuse_unless_fits(estimate: MemoryEstimate, target: str) -> None:
    if not estimate.fits:
        raise MemoryWontFit(
            f"{target} at {estimate.precision} on {estimate.device} will not fit: it {describe_estimate(estimate)}. "
            "Choose a smaller precision (int8, int4), free memory, or load anyway.", estimate)


class LoadMemory:
    """Shapes read once per file (path, size, time), the measured overhead per device, the records."""

    def __init__(self, database: AppDatabase):
        self.database = database
        self._shapes: dict[tuple, ModelShape] = {}
        self._lock = threading.Lock()

    def shape(self, path: str) -> ModelShape:
        file = Path(path).expanduser()
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._shapes.get(key)
        if known is None:  # read outside the lock: another model's estimate need not wait for this one
            known = read_model_shape(file)
            with self._lock:
                self._shapes[key] = known
        return known

    def overhead_bytes(self, device: str) -> int | None:
        """The overhead measured by the last first-load on this kind of device, None before any."""
        with self.database.read() as db:
            rows = list(db.query("select overhead_bytes from load_memory where device = ? and overhead_bytes is not null "
                                 "order by id desc limit 1", [device]))
        return rows[0]["overhead_bytes"] if rows else None

    def record(self, model: str, estimate: MemoryEstimate, measured_weight_bytes: int, measured_load_bytes: int | None,
               first_load: bool) -> None:
        """Store the measured figures beside the estimate; a first load in the process measures the overhead."""
        overhead = max(0, measured_load_bytes - measured_weight_bytes) if first_load and measured_load_bytes else None
        with self.database.write() as db:
            db["load_memory"].insert({
                "at": now_iso(), "model": model, "precision": estimate.precision, "device": estimate.device,
                "estimate_json": json.dumps(estimate.items() | {"sequences": estimate.sequences,
                                                                "context_tokens": estimate.context_tokens,
                                                                "free": estimate.free_bytes}),
                "estimated_weight_bytes": estimate.weight_bytes, "measured_weight_bytes": measured_weight_bytes,
                "measured_load_bytes": measured_load_bytes, "overhead_bytes": overhead,
            })

    def records(self, limit: int = 50) -> list[dict]:
        with self.database.read() as db:
            return list(db.query("select * from load_memory order by id desc limit ?", [limit]))


def used_memory_bytes(device: str) -> int:
    """What this process holds on the device now: CUDA's allocated bytes, else the resident set."""
    if device.startswith("cuda"):
        return int(torch.cuda.memory_allocated())
    return int(psutil.Process().memory_info().rss)
