"""Engine figures: throughput, time to first token and latency percentiles, queue and batch state.

The engine loop records into `EngineMetrics`; anyone may take a `snapshot()` from any thread.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from engine.request import FinishReason, GenerationResult

# Bucket upper bounds in seconds, shared by the time-to-first-token and latency histograms.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RATE_WINDOW_S = 5.0
PERCENTILE_WINDOW = 512  # recent requests the percentiles are taken over
# Alerts judge the requests that finished within this many seconds: a slow request stops counting once it is
# this old, so an alert clears by itself and never shows a figure from long ago.
RECENT_WINDOW_S = 60.0


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass
class Histogram:
    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with +inf, as Prometheus wants."""
        running, out = 0, []
        for bound, count in zip(list(self.bounds) + [float("inf")], self.counts):
            running += count
            out.append((bound, running))
        return out


@dataclass(frozen=True)
class EngineSnapshot:
    timestamp: float
    waiting: int
    running: int
    max_batch_size: int
    batch_occupancy: float  # running / max batch size, 0..1
    decode_tokens_per_second: float
    prefill_tokens_per_second: float
    ttft_p50: float | None
    ttft_p95: float | None
    ttft_p99: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    requests_finished: int
    requests_failed: int
    requests_cancelled: int
    prompt_tokens_total: int
    generated_tokens_total: int
    ttft_histogram: tuple[tuple[float, int], ...]
    latency_histogram: tuple[tuple[float, int], ...]
    ttft_sum: float
    latency_sum: float
    kv_cache_tokens: int = 0
    oom_backoffs: int = 0
    decoder: str = ""  # which forward pass runs (engine/model_runner.py)
    # p99s over the requests that finished in the last RECENT_WINDOW_S (None when none did): what alerts judge.
    recent_requests: int = 0
    recent_ttft_p99: float | None = None
    recent_inter_token_p99: float | None = None
    recent_queue_wait_p99: float | None = None
    recent_latency_p99: float | None = None
    intra_op_threads: int = 0  # the thread count the engine's forward pass runs with now (0: not known)


@dataclass(frozen=True)
class _RecentRequest:
    finished_at: float  # on the metrics' clock
    ttft: float | None
    inter_token: float | None
    queue_wait: float | None
    latency: float


class EngineMetrics:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[_RecentRequest] = deque(maxlen=PERCENTILE_WINDOW)
        self._decode_events: deque[tuple[float, int]] = deque()
        self._prefill_events: deque[tuple[float, int]] = deque()
        self._ttfts: deque[float] = deque(maxlen=PERCENTILE_WINDOW)
        self._latencies: deque[float] = deque(maxlen=PERCENTILE_WINDOW)
        self._ttft_histogram = Histogram()
        self._latency_histogram = Histogram()
        self.finished = self.failed = self.cancelled = 0
        self.prompt_tokens = self.generated_tokens = 0
        self.kv_cache_tokens = 0
        self.oom_backoffs = 0
        self.intra_op_threads = 0

    def record_prefill(self, tokens: int) -> None:
        with self._lock:
            self._prefill_events.append((self._clock(), tokens))
            self.prompt_tokens += tokens

    def record_decode(self, tokens: int) -> None:
        with self._lock:
            self._decode_events.append((self._clock(), tokens))
            self.generated_tokens += tokens

    def record_result(self, result: GenerationResult) -> None:
        with self._lock:
            if result.finish_reason is FinishReason.ERROR:
                self.failed += 1
                return
            if result.finish_reason is FinishReason.CANCELLED:
                self.cancelled += 1
            else:
                self.finished += 1
            if result.time_to_first_token_s is not None:
                self._ttfts.append(result.time_to_first_token_s)
                self._ttft_histogram.observe(result.time_to_first_token_s)
            self._latencies.append(result.total_s)
            self._latency_histogram.observe(result.total_s)
            self._recent.append(_RecentRequest(self._clock(), result.time_to_first_token_s, result.inter_token_s,
                                               result.queue_wait_s, result.total_s))

    def snapshot(self, waiting: int, running: int, max_batch_size: int) -> EngineSnapshot:
        now = self._clock()
        with self._lock:
            recent = [r for r in self._recent if r.finished_at >= now - RECENT_WINDOW_S]
            decode_rate = self._rate(self._decode_events, now)
            prefill_rate = self._rate(self._prefill_events, now)
            ttfts, latencies = sorted(self._ttfts), sorted(self._latencies)
            return EngineSnapshot(
                timestamp=time.time(),
                waiting=waiting,
                running=running,
                max_batch_size=max_batch_size,
                batch_occupancy=running / max_batch_size if max_batch_size else 0.0,
                decode_tokens_per_second=decode_rate,
                prefill_tokens_per_second=prefill_rate,
                ttft_p50=percentile(ttfts, 0.50),
                ttft_p95=percentile(ttfts, 0.95),
                ttft_p99=percentile(ttfts, 0.99),
                latency_p50=percentile(latencies, 0.50),
                latency_p95=percentile(latencies, 0.95),
                latency_p99=percentile(latencies, 0.99),
                requests_finished=self.finished,
                requests_failed=self.failed,
                requests_cancelled=self.cancelled,
                prompt_tokens_total=self.prompt_tokens,
                generated_tokens_total=self.generated_tokens,
                ttft_histogram=tuple(self._ttft_histogram.cumulative()),
                latency_histogram=tuple(self._latency_histogram.cumulative()),
                ttft_sum=self._ttft_histogram.total,
                latency_sum=self._latency_histogram.total,
                kv_cache_tokens=self.kv_cache_tokens,
                oom_backoffs=self.oom_backoffs,
                recent_requests=len(recent),
                recent_ttft_p99=_recent_p99(recent, "ttft"),
                recent_inter_token_p99=_recent_p99(recent, "inter_token"),
                recent_queue_wait_p99=_recent_p99(recent, "queue_wait"),
                recent_latency_p99=_recent_p99(recent, "latency"),
                intra_op_threads=self.intra_op_threads,
            )

    @staticmethod
    def _rate(events: deque[tuple[float, int]], now: float) -> float:
        while events and events[0][0] < now - RATE_WINDOW_S:
            events.popleft()
        return sum(tokens for _, tokens in events) / RATE_WINDOW_S


def _recent_p99(recent: list[_RecentRequest], name: str) -> float | None:
    return percentile(sorted(v for r in recent if (v := getattr(r, name)) is not None), 0.99)
