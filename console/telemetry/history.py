"""Ring buffers of named series over one shared time axis: the last hour of samples, thread-safe.

The sampling thread appends; the dashboard and the CSV export read copies. Each series is stored twice over
(at i and i + capacity) so the latest n values are always one contiguous slice: reading a window is a copy, not
a re-ordering, which keeps redraws cheap at 10 Hz. A value a sample lacks (no GPU field, no request yet) is NaN.
"""

from __future__ import annotations

import math
import threading

import numpy as np


def capacity_for(history_s: float, interval_s: float) -> int:
    """Slots needed to hold `history_s` of samples taken every `interval_s`."""
    return max(1, math.ceil(history_s / interval_s))


class TelemetryHistory:
    def __init__(self, capacity: int):
        self._lock = threading.Lock()
        self._capacity = int(capacity)
        self._next = 0  # slot the next sample goes to
        self._length = 0
        self._appended = 0
        self._times = self._empty()
        self._series: dict[str, np.ndarray] = {}

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def appended(self) -> int:
        """Samples appended since creation (not capped): lets a reader tell whether anything is new."""
        return self._appended

    def __len__(self) -> int:
        return self._length

    def names(self) -> list[str]:
        with self._lock:
            return list(self._series)

    def append(self, timestamp: float, values: dict[str, float | None]) -> None:
        with self._lock:
            slot, capacity = self._next, self._capacity
            for name in values.keys() - self._series.keys():
                self._series[name] = self._empty()  # NaN for the samples before it appeared
            for name, data in self._series.items():
                value = values.get(name)
                data[slot] = data[slot + capacity] = np.nan if value is None else value
            self._times[slot] = self._times[slot + capacity] = timestamp
            self._next = (slot + 1) % capacity
            self._length = min(self._length + 1, capacity)
            self._appended += 1

    def window(self, seconds: float | None = None, names: list[str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Timestamps and values of the samples within `seconds` of the newest one (all buffered when None),
        oldest first; a name never sampled comes back as all NaN."""
        with self._lock:
            end = self._next + self._capacity
            start = end - self._length
            times = self._times[start:end]
            if seconds is not None and self._length:
                start += int(np.searchsorted(times, times[-1] - seconds, side="left"))
                times = self._times[start:end]
            wanted = self._series.keys() if names is None else names
            series = {
                name: self._series[name][start:end].copy() if name in self._series else np.full(end - start, np.nan)
                for name in wanted
            }
            return times.copy(), series

    def latest(self, name: str) -> float | None:
        with self._lock:
            data = self._series.get(name)
            if data is None or not self._length:
                return None
            value = data[self._next + self._capacity - 1]
            return None if math.isnan(value) else float(value)

    def resize(self, capacity: int) -> None:
        """Change the number of slots, keeping the newest samples that fit."""
        with self._lock:
            keep = min(self._length, capacity)
            end = self._next + self._capacity
            old_times, old_series = self._times[end - keep:end], {n: d[end - keep:end] for n, d in self._series.items()}
            self._capacity = int(capacity)
            self._times = self._empty()
            self._series = {name: self._empty() for name in old_series}
            for target, source in [(self._times, old_times)] + [(self._series[n], d) for n, d in old_series.items()]:
                target[:keep] = source
                target[self._capacity:self._capacity + keep] = source
            self._next = keep % self._capacity
            self._length = keep

    def _empty(self) -> np.ndarray:
        return np.full(2 * self._capacity, np.nan)
