"""Running a sweep in rounds: round r loads each precision in turn (a verified load and a warm-up; weight
memory and perplexity at its first load) and runs repetition r of every point of that precision; so every
repetition of every point is interleaved with the others (a drifting machine moves every point alike), also
across precisions. Each repetition is stored as soon as it ends; a cancelled or crashed sweep resumes from
what is stored.

The engine is driven through its public API only; requests go through the bench's `drive_level`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from console.bench.runner import drive_level
from console.errors import ConsoleError, LabError
from console.lab.measurement import figures_of, summarise
from console.lab.plan import PlannedPoint
from console.lab.sweep_store import PrecisionRecord, SweepRecord, SweepStore
from console.units import format_size
from engine import EngineError, GenerationRequest, InferenceEngine, LoadedModelInfo, SamplingParams
from engine.weights.memory_estimate import MemoryEstimate


@dataclass(frozen=True)
class SweepProgress:
    done: int  # repetitions run (this run and earlier ones)
    total: int
    eta_s: float | None
    message: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


class SweepCancelled(LabError):
    """The sweep was cancelled; what it measured is kept and `resume` continues it."""


@dataclass
class SweepHooks:
    """What the runner needs from the application: a verified, audited load at a precision; the perplexity
    of the loaded model; a memory estimate for (precision, sequences, tokens per sequence)."""

    load: Callable[[str], LoadedModelInfo]
    perplexity: Callable[[], float]
    estimate: Callable[[str, int, int], MemoryEstimate]


def run_sweep(sweep: SweepRecord, store: SweepStore, engine: InferenceEngine, hooks: SweepHooks,
              progress: Callable[[SweepProgress], None] = lambda _p: None,
              cancel: threading.Event | None = None) -> SweepRecord:
    """Run (or resume) `sweep` until every point is measured or skipped. Raises SweepCancelled when `cancel`
    is set (checked between repetitions); any other failure marks the sweep failed and is raised."""
    cancel = cancel or threading.Event()
    previous_knobs = engine.settings
    store.set_state(sweep.id, "running")
    try:
        _run(sweep, store, engine, hooks, progress, cancel)
    except SweepCancelled:
        store.set_state(sweep.id, "cancelled")
        raise
    except BaseException as error:
        store.set_state(sweep.id, "failed", str(error))
        raise
    finally:
        engine.configure(max_batch_size=previous_knobs.max_batch_size, max_wait_ms=previous_knobs.max_wait_ms,
                         queue_limit=previous_knobs.queue_limit, response_cache=previous_knobs.response_cache)
    store.set_state(sweep.id, "done")
    return store.sweep(sweep.id)


def _run(sweep, store: SweepStore, engine, hooks: SweepHooks, progress, cancel: threading.Event) -> None:
    plan = sweep.plan
    finished = {record.point.key for record in store.points(sweep.id)}
    counts = store.repetition_counts(sweep.id)
    todo: list[PlannedPoint] = []
    for point in plan.points():
        if point.key in finished:
            continue
        reason = plan.skip_reason(point)
        if reason:
            store.skip_point(sweep, point, reason)
            continue
        todo.append(point)
    already = sum(min(counts.get(p.key, 0), plan.repetitions) for p in todo)
    clock = _Eta(len(todo) * plan.repetitions, already)
    progress(SweepProgress(already, clock.total, None, f"{len(todo)} points to measure"))
    measured_precisions = set(store.precisions(sweep.id))
    by_precision: dict[str, list[PlannedPoint]] = {}
    for precision in plan.precisions:
        points = [p for p in todo if p.precision == precision]
        fitting = _drop_points_that_do_not_fit(sweep, store, hooks, points)
        clock.total -= sum(plan.repetitions - min(counts.get(p.key, 0), plan.repetitions) for p in points if p not in fitting)
        if fitting:
            by_precision[precision] = fitting
    # Round r runs repetition r of every precision's points before any precision runs repetition r + 1, so a
    # machine that drifts between two precisions' turns moves the repetitions of both (each precision is
    # loaded once per round: a few seconds each, against a drift of +-20 % within minutes).
    for repetition in range(plan.repetitions):
        for precision, points in list(by_precision.items()):
            points = [p for p in points if counts.get(p.key, 0) <= repetition]
            if not points:
                continue
            _check(cancel)
            progress(SweepProgress(clock.done, clock.total, clock.eta(),
                                   f"loading {precision} (round {repetition + 1} of {plan.repetitions})"))
            try:
                info = hooks.load(precision)
            except (EngineError, ConsoleError) as error:  # this precision cannot run here: only its points are skipped
                store.save_precision(sweep, PrecisionRecord(precision, None, None, None, None, str(error)))
                for point in by_precision.pop(precision):
                    store.skip_point(sweep, point, f"{precision} could not be loaded: {error}")
                    clock.total -= plan.repetitions - min(counts.get(point.key, 0), plan.repetitions)
                continue
            engine.generate(GenerationRequest(messages=[{"role": "user", "content": "Warm-up."}],
                                              params=SamplingParams(temperature=0.0, max_new_tokens=4, ignore_eos=True)))
            while engine.snapshot().decoder.endswith("compiling"):  # a CPU compiles in the background: measure after
                _check(cancel)
                cancel.wait(0.2)
            if precision not in measured_precisions:
                estimate = hooks.estimate(precision, 1, plan.context_tokens)
                progress(SweepProgress(clock.done, clock.total, clock.eta(), f"perplexity at {precision}"))
                store.save_precision(sweep, PrecisionRecord(precision, info.weight_bytes, estimate.weight_bytes,
                                                            hooks.perplexity(), info.load_seconds))
                measured_precisions.add(precision)
            for point in points:
                progress(SweepProgress(clock.done, clock.total, clock.eta(),
                                       f"{point.label}: repetition {repetition + 1} of {plan.repetitions}"))
                _check(cancel)  # after the report: a cancel asked for from it stops before this repetition
                clock.start()
                engine.configure(max_batch_size=point.batch_size, max_wait_ms=point.max_wait_ms, response_cache=False,
                                 queue_limit=max(64, 2 * point.concurrency))
                figures = figures_of(drive_level(engine, point.concurrency, plan.new_tokens, info.device))
                store.save_repetition(sweep, point, repetition, figures)
                counts[point.key] = counts.get(point.key, 0) + 1
                clock.tick()
                if counts[point.key] == plan.repetitions:
                    store.save_point(sweep, point, summarise(store.repetitions(sweep.id, point.key)))
    progress(SweepProgress(clock.total, clock.total, 0.0, "done"))


def _drop_points_that_do_not_fit(sweep, store: SweepStore, hooks: SweepHooks, points: list[PlannedPoint]) -> list[PlannedPoint]:
    """Skip, with the figures, every point whose estimate exceeds the free memory or the plan's cap."""
    kept = []
    cap = sweep.plan.memory_limit_bytes
    for point in points:
        estimate = hooks.estimate(point.precision, point.batch_size, sweep.plan.context_tokens)
        limits = [x for x in (estimate.free_bytes, cap) if x is not None]
        limit = min(limits) if limits else None
        if limit is not None and estimate.total_bytes > limit:
            against = (f"the sweep's memory cap of {format_size(limit)}" if limit == cap
                       else f"{format_size(limit)} free")
            store.skip_point(sweep, point, (
                f"will not fit: needs about {format_size(estimate.total_bytes)} (weights "
                f"{format_size(estimate.weight_bytes)}, KV cache {format_size(estimate.kv_cache_bytes)} for "
                f"{point.batch_size} × {estimate.context_tokens} tokens, overhead {format_size(estimate.overhead_bytes)}, "
                f"margin {format_size(estimate.margin_bytes)}) against {against}"))
            continue
        kept.append(point)
    return kept


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise SweepCancelled("The sweep was cancelled. The points it finished are kept; resume it to measure the rest.")


class _Eta:
    """Time left from the mean time of the repetitions measured in this run (loads and perplexity excluded:
    a first load that converts a GGUF file would otherwise inflate it tenfold)."""

    def __init__(self, total: int, done: int):
        self.total, self.done = total, done
        self._measured, self._spent = 0, 0.0
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def tick(self) -> None:
        self.done += 1
        if self._started is not None:
            self._spent += time.perf_counter() - self._started
            self._measured += 1
            self._started = None

    def eta(self) -> float | None:
        if not self._measured:
            return None
        return self._spent / self._measured * max(0, self.total - self.done)
