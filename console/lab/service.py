"""The lab's service: the permission checks and audit entries around planning, running, resuming, reading,
comparing and applying sweeps. The CLI and the Lab tab both call it (through `ConsoleCore.lab`).

Sweeping needs `bench:run`; applying a recommendation (or saving it as a model version's defaults) needs
`engine:configure`; reading results needs `metrics:view`.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from console.access.guard import Guard, requires
from console.access.permissions import Permission
from console.access.principal import Principal
from console.errors import LabError
from console.lab.analysis import Answers, Sla, answer
from console.lab.machine import describe_machine
from console.lab.plan import SweepPlan, default_plan
from console.lab.sweep_runner import SweepHooks, SweepProgress, run_sweep
from console.lab.sweep_store import PointRecord, PrecisionRecord, Recommendation, SweepRecord, SweepStore
from console.registry.registry import Registry
from console.registry.verified_loading import VersionLoadSpec
from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso
from engine import InferenceEngine, ModelSpec
from engine.weights.devices import describe_device, resolve_device


def model_key_of_version(version_id: int) -> str:
    return f"version:{version_id}"


def model_key_of_path(path: str) -> str:
    return f"path:{Path(path).expanduser().resolve()}"


@dataclass(frozen=True)
class LabTarget:
    """The model a sweep measures: a registered version (verified before each load) or a path."""

    version_id: int | None
    model_name: str
    model_path: str
    model_key: str

    def load_spec(self, precision: str, device: str) -> ModelSpec | VersionLoadSpec:
        if self.version_id is not None:
            return VersionLoadSpec(self.version_id, precision, device, name=self.model_name)
        return ModelSpec(self.model_path, precision=precision, device=device, name=self.model_name)


@dataclass(frozen=True)
class ApplyOutcome:
    recommendation: Recommendation
    reload_needed: bool  # the loaded model is not the sweep's model at the recommended precision
    reload_target: ModelSpec | VersionLoadSpec | None = None  # the sweep's model is loaded at another precision


class LabService:
    def __init__(self, database: AppDatabase, guard: Guard, registry: Registry, engine: InferenceEngine, loads):
        """`loads` is the core: its audited, verified, memory-checked `load`, its `configure_engine`, its
        `estimate_path` and `model_info` (the lab drives the engine through the same doors as everyone)."""
        self.guard = guard
        self.store = SweepStore(database)
        self._registry = registry
        self._engine = engine
        self._loads = loads

    # --- planning and running ---------------------------------------------------------------------------
    def target(self, load_target: ModelSpec | VersionLoadSpec) -> LabTarget:
        if isinstance(load_target, VersionLoadSpec):
            version = self._registry.resolve(load_target.ref)
            return LabTarget(version.id, version.ref, version.source_path, model_key_of_version(version.id))
        path = str(Path(load_target.path).expanduser())
        return LabTarget(None, load_target.name or Path(path).name, path, model_key_of_path(path))

    def default_plan(self, target: LabTarget, device: str = "auto", new_tokens: int = 32, repetitions: int = 3) -> SweepPlan:
        """The default sweep for the device, its batch sizes capped where the KV cache would not fit."""
        plan = default_plan(device, new_tokens=new_tokens, repetitions=repetitions)
        widest = plan.precisions[0]
        fitting = [b for b in plan.batch_sizes
                   if self._loads.estimate_path(target.model_path, widest, device, b, plan.context_tokens).fits]
        return default_plan(device, max_batch_by_memory=max(fitting, default=1), new_tokens=new_tokens,
                            repetitions=repetitions)

    @requires(Permission.BENCH_RUN, "run a tuning sweep")
    def start(self, principal: Principal, target: LabTarget, plan: SweepPlan, device: str = "auto") -> SweepRecord:
        """Record a new sweep (nothing measured yet); `run` measures it."""
        plan.validate()
        device_name = describe_device(resolve_device(device))
        sweep = self.store.create(target.version_id, target.model_name, target.model_path, target.model_key,
                                  device_name, describe_machine(), plan, principal.user)
        self.guard.record(principal, "lab.sweep", target.model_name, sweep=sweep.id, device=device_name,
                          points=len(plan.points()), plan=asdict(plan))
        return sweep

    @requires(Permission.BENCH_RUN, "run a tuning sweep")
    def run(self, principal: Principal, sweep_id: int, progress: Callable[[SweepProgress], None] = lambda _p: None,
            cancel: threading.Event | None = None) -> SweepRecord:
        """Measure every point of the sweep not yet stored (so this also resumes one). Blocking: minutes."""
        sweep = self.store.sweep(sweep_id)
        if sweep.state == "done":
            raise LabError(f"Sweep {sweep_id} is complete: there is nothing to resume.")
        target = LabTarget(sweep.version_id, sweep.model_name, sweep.model_path, sweep.model_key)
        device = "cuda" if sweep.device.startswith("cuda") else "cpu"
        loads = self._loads
        hooks = SweepHooks(
            load=lambda precision: loads.load(principal, target.load_spec(precision, device)),
            perplexity=lambda: self._engine.perplexity(_perplexity_text()),
            estimate=lambda precision, sequences, tokens: loads.estimate_path(sweep.model_path, precision, device,
                                                                              sequences, tokens),
        )
        previous_compile = loads.compile_override
        loads.compile_override = sweep.plan.compile
        try:
            finished = run_sweep(sweep, self.store, self._engine, hooks, progress, cancel)
        finally:
            loads.compile_override = previous_compile
            done = self.store.sweep(sweep_id)
            self.guard.record(principal, "lab.sweep.end", sweep.model_name, "ok" if done.state == "done" else done.state,
                              sweep=sweep_id, state=done.state, points=len(self.store.points(sweep_id)))
        return finished

    # --- reading -----------------------------------------------------------------------------------------
    @requires(Permission.METRICS_VIEW, "see tuning sweeps")
    def sweeps(self, principal: Principal, model_key: str | None = None) -> list[SweepRecord]:
        return self.store.sweeps(model_key)

    @requires(Permission.METRICS_VIEW, "see tuning sweeps")
    def sweep(self, principal: Principal, sweep_id: int) -> tuple[SweepRecord, list[PointRecord], dict[str, PrecisionRecord]]:
        return self.store.sweep(sweep_id), self.store.points(sweep_id), self.store.precisions(sweep_id)

    @requires(Permission.METRICS_VIEW, "see tuning sweeps")
    def answers(self, principal: Principal, sweep_id: int, sla: Sla = Sla()) -> Answers:
        return answer(self.store.points(sweep_id), self.store.precisions(sweep_id), sla)

    # --- applying ----------------------------------------------------------------------------------------
    @requires(Permission.ENGINE_CONFIGURE, "apply a tuning recommendation")
    def apply(self, principal: Principal, sweep_id: int, sla: Sla = Sla(), save_default: bool = False,
              live: bool = True) -> ApplyOutcome:
        """Set the engine's batching knobs to the sweep's best configuration within the SLA (audited), and
        optionally save it as the model version's defaults on this device: `auto` precision then uses it."""
        sweep = self.store.sweep(sweep_id)
        answers = answer(self.store.points(sweep_id), self.store.precisions(sweep_id), sla)
        best = answers.recommendation
        if best is None:
            raise LabError(f"Nothing was applied: {answers.summary()}")
        point = best.record.point
        recommendation = Recommendation(sweep.model_key, sweep.device, point.precision, point.batch_size,
                                        point.max_wait_ms, sweep.id, principal.user, now_iso())
        if live:
            self._loads.configure_engine(principal, max_batch_size=point.batch_size, max_wait_ms=point.max_wait_ms)
        if save_default:
            self.store.save_recommendation(recommendation)
        self.guard.record(principal, "lab.apply", sweep.model_name, sweep=sweep.id, precision=point.precision,
                          max_batch_size=point.batch_size, max_wait_ms=point.max_wait_ms, sla=asdict(sla),
                          live=live, saved_as_default=save_default, device=sweep.device)
        info = self._loads.model_info
        sweep_model_loaded = info is not None and Path(info.path).expanduser().resolve() == Path(sweep.model_path).resolve()
        other_precision = sweep_model_loaded and info.precision != point.precision
        target = LabTarget(sweep.version_id, sweep.model_name, sweep.model_path, sweep.model_key)
        device = "cuda" if sweep.device.startswith("cuda") else "cpu"
        return ApplyOutcome(recommendation, not sweep_model_loaded or other_precision,
                            target.load_spec(point.precision, device) if other_precision else None)

    def recommendation(self, model_key: str, device: str) -> Recommendation | None:
        return self.store.recommendation(model_key, device)


def _perplexity_text() -> str:
    from resources import resource_path

    return resource_path("perplexity.txt").read_text(encoding="utf-8")
