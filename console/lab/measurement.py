"""The figures of one repetition of a sweep point, and of a point over its repetitions (median, spread).

A repetition is one batch of concurrent requests driven by the bench's `drive_level`; its figures are the
ones the lab stores, charts and judges against an SLA.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, fields

from console.bench.runner import LevelOutcome
from engine.metrics import percentile

UNSTABLE_CV = 0.20  # a point whose throughput varies more than this across repetitions is marked unstable


@dataclass(frozen=True)
class Figures:
    """One repetition's figures, or the median of a point's repetitions. Times in seconds."""

    output_tokens_per_s: float
    tokens_per_s_per_user: float
    requests_per_s: float
    ttft_p50_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    itl_p50_s: float
    itl_p99_s: float
    latency_p50_s: float
    latency_p99_s: float
    peak_memory_bytes: int
    prompt_tokens: int  # mean per request
    generated_tokens: int  # over the repetition
    errors: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Figures":
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def figures_of(outcome: LevelOutcome) -> Figures:
    ok = [r for r in outcome.results if r.ok]
    nothing = 0.0
    ttfts = sorted(r.time_to_first_token_s for r in ok if r.time_to_first_token_s is not None)
    latencies = sorted(r.total_s for r in ok)
    gaps = sorted(b - a for times in outcome.piece_times for a, b in zip(times, times[1:]))
    generated = sum(r.completion_tokens for r in ok)
    per_user = [r.completion_tokens / r.total_s for r in ok if r.total_s > 0]
    elapsed = max(outcome.elapsed_s, 1e-9)
    return Figures(
        output_tokens_per_s=generated / elapsed,
        tokens_per_s_per_user=statistics.median(per_user) if per_user else nothing,
        requests_per_s=len(ok) / elapsed,
        ttft_p50_s=percentile(ttfts, 0.5) or nothing,
        ttft_p90_s=percentile(ttfts, 0.9) or nothing,
        ttft_p99_s=percentile(ttfts, 0.99) or nothing,
        itl_p50_s=percentile(gaps, 0.5) or nothing,
        itl_p99_s=percentile(gaps, 0.99) or nothing,
        latency_p50_s=percentile(latencies, 0.5) or nothing,
        latency_p99_s=percentile(latencies, 0.99) or nothing,
        peak_memory_bytes=outcome.peak_memory_bytes,
        prompt_tokens=round(statistics.mean(r.prompt_tokens for r in ok)) if ok else 0,
        generated_tokens=generated,
        errors=len(outcome.results) - len(ok),
    )


@dataclass(frozen=True)
class PointSummary:
    """A point over its repetitions: the median of every figure, and the spread of its throughput."""

    median: Figures
    repetitions: int
    throughput_cv: float  # coefficient of variation of output tok/s across repetitions

    @property
    def unstable(self) -> bool:
        return self.throughput_cv > UNSTABLE_CV


def summarise(repetitions: list[Figures]) -> PointSummary:
    if not repetitions:
        raise ValueError("a point needs at least one repetition")
    medians = {}
    for f in fields(Figures):
        values = [getattr(r, f.name) for r in repetitions]
        value = statistics.median(values)
        medians[f.name] = round(value) if f.type in (int, "int") else value
    medians["errors"] = sum(r.errors for r in repetitions)  # every failed request counts
    speeds = [r.output_tokens_per_s for r in repetitions]
    mean = statistics.mean(speeds)
    cv = statistics.pstdev(speeds) / mean if len(speeds) > 1 and mean > 0 else 0.0
    return PointSummary(Figures(**medians), len(repetitions), cv)
