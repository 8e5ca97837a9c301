"""Answers from a sweep: which points meet the admin's SLA, the best throughput, the most concurrent users
and the lowest latency within it, the Pareto front of tok/s per user against total tok/s, and the top
configurations. Pure functions over stored rows: no engine, no database."""

from __future__ import annotations

from dataclasses import dataclass, field

from console.lab.sweep_store import PointRecord, PrecisionRecord
from console.units import format_size

REFERENCE_ORDER = ("fp32", "bf16", "fp16", "int8", "int4")  # the perplexity baseline: the widest measured


@dataclass(frozen=True)
class Sla:
    """Limits; None means no limit on that figure."""

    ttft_p99_s: float | None = None
    itl_p99_s: float | None = None
    memory_bytes: int | None = None
    perplexity_increase_pct: float | None = None

    def describe(self) -> str:
        parts = []
        if self.ttft_p99_s is not None:
            parts.append(f"TTFT p99 ≤ {self.ttft_p99_s * 1000:g} ms")
        if self.itl_p99_s is not None:
            parts.append(f"ITL p99 ≤ {self.itl_p99_s * 1000:g} ms")
        if self.memory_bytes is not None:
            parts.append(f"memory ≤ {format_size(self.memory_bytes)}")
        if self.perplexity_increase_pct is not None:
            parts.append(f"perplexity +{self.perplexity_increase_pct:g} % at most")
        return ", ".join(parts) or "no limits"


@dataclass(frozen=True)
class Judged:
    """A measured point with the figures the SLA reads, and what it misses."""

    record: PointRecord
    perplexity: float | None
    perplexity_increase_pct: float | None
    misses: tuple[str, ...] = ()

    @property
    def meets(self) -> bool:
        return not self.misses

    @property
    def figures(self):
        return self.record.summary.median

    @property
    def label(self) -> str:
        p = self.record.point
        return f"{p.precision} b{p.batch_size} c{p.concurrency}" + (f" w{p.max_wait_ms:g}" if p.max_wait_ms != 5.0 else "")


@dataclass(frozen=True)
class Answers:
    sla: Sla
    judged: list[Judged]
    best_throughput: Judged | None
    most_users: Judged | None
    lowest_latency: Judged | None
    pareto: list[Judged] = field(default_factory=list)
    top: list[Judged] = field(default_factory=list)  # best throughput first, within the SLA

    @property
    def recommendation(self) -> Judged | None:
        return self.best_throughput

    def summary(self) -> str:
        if not self.judged:
            return "No measured point yet."
        if self.best_throughput is None:
            closest = min(self.judged, key=lambda j: len(j.misses))
            return (f"No configuration meets the SLA ({self.sla.describe()}). Closest: {closest.label}, which misses "
                    + "; ".join(closest.misses) + ".")
        best, users, fast = self.best_throughput, self.most_users, self.lowest_latency
        return (f"Within the SLA ({self.sla.describe()}): best throughput {best.label} "
                f"({best.figures.output_tokens_per_s:.1f} tok/s); most users {users.label} "
                f"({users.record.point.concurrency} users); lowest latency {fast.label} "
                f"(p99 {fast.figures.latency_p99_s:.2f} s end to end).")


def reference_perplexity(precisions: dict[str, PrecisionRecord]) -> float | None:
    for name in REFERENCE_ORDER:
        record = precisions.get(name)
        if record is not None and record.perplexity:
            return record.perplexity
    return None


def judge(points: list[PointRecord], precisions: dict[str, PrecisionRecord], sla: Sla) -> list[Judged]:
    reference = reference_perplexity(precisions)
    judged = []
    for record in points:
        if not record.measured:
            continue
        figures = record.summary.median
        perplexity = precisions.get(record.point.precision).perplexity if record.point.precision in precisions else None
        increase = 100 * (perplexity / reference - 1) if perplexity and reference else None
        misses = []
        if figures.errors:
            misses.append(f"{figures.errors} failed requests")
        if sla.ttft_p99_s is not None and figures.ttft_p99_s > sla.ttft_p99_s:
            misses.append(f"TTFT p99 {figures.ttft_p99_s * 1000:.0f} ms > {sla.ttft_p99_s * 1000:g} ms")
        if sla.itl_p99_s is not None and figures.itl_p99_s > sla.itl_p99_s:
            misses.append(f"ITL p99 {figures.itl_p99_s * 1000:.0f} ms > {sla.itl_p99_s * 1000:g} ms")
        if sla.memory_bytes is not None and figures.peak_memory_bytes > sla.memory_bytes:
            misses.append(f"peak memory {format_size(figures.peak_memory_bytes)} > {format_size(sla.memory_bytes)}")
        if sla.perplexity_increase_pct is not None:
            if increase is None:
                misses.append("perplexity not measured")
            elif increase > sla.perplexity_increase_pct:
                misses.append(f"perplexity +{increase:.2f} % > +{sla.perplexity_increase_pct:g} %")
        judged.append(Judged(record, perplexity, increase, tuple(misses)))
    return judged


def pareto_front(judged: list[Judged]) -> list[Judged]:
    """Points no other point beats on both tok/s per user and total tok/s, by total tok/s."""
    front = []
    for candidate in judged:
        c = candidate.figures
        dominated = any(
            o.figures.tokens_per_s_per_user >= c.tokens_per_s_per_user and o.figures.output_tokens_per_s >= c.output_tokens_per_s
            and (o.figures.tokens_per_s_per_user > c.tokens_per_s_per_user or o.figures.output_tokens_per_s > c.output_tokens_per_s)
            for o in judged
        )
        if not dominated:
            front.append(candidate)
    return sorted(front, key=lambda j: j.figures.output_tokens_per_s)


def answer(points: list[PointRecord], precisions: dict[str, PrecisionRecord], sla: Sla = Sla(), top: int = 3) -> Answers:
    judged = judge(points, precisions, sla)
    meeting = [j for j in judged if j.meets]
    by_throughput = sorted(meeting, key=lambda j: -j.figures.output_tokens_per_s)
    return Answers(
        sla=sla,
        judged=judged,
        best_throughput=by_throughput[0] if by_throughput else None,
        most_users=max(meeting, key=lambda j: (j.record.point.concurrency, j.figures.output_tokens_per_s), default=None),
        lowest_latency=min(meeting, key=lambda j: (j.figures.latency_p99_s, -j.figures.output_tokens_per_s), default=None),
        pareto=pareto_front(judged),
        top=by_throughput[:top],
    )
