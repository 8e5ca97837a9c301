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

from console.errors import LabError
from console.lab.analysis import Answers, Sla, answer
from console.lab.machine import describe_machine
from console.lab.plan import SweepPlan, default_plan
from console.lab.sweep_runner import SweepHooks, SweepProgress, run_sweep
from console.lab.sweep_store import PointRecord, PrecisionRecord, Recommendation, SweepRecord, SweepStore
from console.registry.verified_loading import VersionLoadSpec
from console.storage.timestamps import now_iso
from engine import ModelSpec
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
    def __init__(self, core):
        self.core = core
        self.store = SweepStore(core.database)

    # --- planning and running ---------------------------------------------------------------------------
    def target(self, load_target: ModelSpec | VersionLoadSpec) -> LabTarget:
        if isinstance(load_target, VersionLoadSpec):
            version = self.core._registry.resolve(load_target.ref)
            return LabTarget(version.id, version.ref, version.source_path, model_key_of_version(version.id))
        path = str(Path(load_target.path).expanduser())
        return LabTarget(None, load_target.name or Path(path).name, path, model_key_of_path(path))

    def default_plan(self, target: LabTarget, device: str = "auto", new_tokens: int = 32, repetitions: int = 3) -> SweepPlan:
        """The default sweep for the device, its batch sizes capped where the KV cache would not fit."""
        plan = default_plan(device, new_tokens=new_tokens, repetitions=repetitions)
        widest = plan.precisions[0]
        fitting = [b for b in plan.batch_sizes
                   if self.core._estimate(target.model_path, widest, device, b, plan.context_tokens).fits]
        return default_plan(device, max_batch_by_memory=max(fitting, default=1), new_tokens=new_tokens,
                            repetitions=repetitions)

    def start(self, target: LabTarget, plan: SweepPlan, device: str = "auto") -> SweepRecord:
        """Record a new sweep (nothing measured yet); `run` measures it."""
        self.core.guard.require("bench:run", "run a tuning sweep")
        plan.validate()
        device_name = describe_device(resolve_device(device))
        sweep = self.store.create(target.version_id, target.model_name, target.model_path, target.model_key,
                                  device_name, describe_machine(), plan, self.core.guard.user)
        self.core.guard.record("lab.sweep", target.model_name, sweep=sweep.id, device=device_name,
                               points=len(plan.points()), plan=asdict(plan))
        return sweep

    def run(self, sweep_id: int, progress: Callable[[SweepProgress], None] = lambda _p: None,
            cancel: threading.Event | None = None) -> SweepRecord:
        """Measure every point of the sweep not yet stored (so this also resumes one). Blocking: minutes."""
        self.core.guard.require("bench:run", "run a tuning sweep")
        sweep = self.store.sweep(sweep_id)
        if sweep.state == "done":
            raise LabError(f"Sweep {sweep_id} is complete: there is nothing to resume.")
        target = LabTarget(sweep.version_id, sweep.model_name, sweep.model_path, sweep.model_key)
        device = "cuda" if sweep.device.startswith("cuda") else "cpu"
        core = self.core
        hooks = SweepHooks(
            load=lambda precision: core.load(target.load_spec(precision, device)),
            perplexity=lambda: core.engine.perplexity(_perplexity_text()),
            estimate=lambda precision, sequences, tokens: core._estimate(sweep.model_path, precision, device,
                                                                         sequences, tokens),
        )
        previous_compile = core.compile_override
        core.compile_override = sweep.plan.compile
        try:
            finished = run_sweep(sweep, self.store, core.engine, hooks, progress, cancel)
        finally:
            core.compile_override = previous_compile
            done = self.store.sweep(sweep_id)
            core.guard.record("lab.sweep.end", sweep.model_name, done.state if done.state != "done" else "ok",
                              sweep=sweep_id, state=done.state, points=len(self.store.points(sweep_id)))
        return finished

    # --- reading -----------------------------------------------------------------------------------------
    def sweeps(self, model_key: str | None = None) -> list[SweepRecord]:
        self.core.guard.require("metrics:view", "see tuning sweeps")
        return self.store.sweeps(model_key)

    def sweep(self, sweep_id: int) -> tuple[SweepRecord, list[PointRecord], dict[str, PrecisionRecord]]:
        self.core.guard.require("metrics:view", "see tuning sweeps")
        return self.store.sweep(sweep_id), self.store.points(sweep_id), self.store.precisions(sweep_id)

    def answers(self, sweep_id: int, sla: Sla = Sla()) -> Answers:
        _sweep, points, precisions = self.sweep(sweep_id)
        return answer(points, precisions, sla)

    # --- applying ----------------------------------------------------------------------------------------
    def apply(self, sweep_id: int, sla: Sla = Sla(), save_default: bool = False, live: bool = True) -> ApplyOutcome:
        """Set the engine's batching knobs to the sweep's best configuration within the SLA (audited), and
        optionally save it as the model version's defaults on this device: `auto` precision then uses it."""
        self.core.guard.require("engine:configure", "apply a tuning recommendation")
        sweep = self.store.sweep(sweep_id)
        answers = self.answers(sweep_id, sla)
        best = answers.recommendation
        if best is None:
            raise LabError(f"Nothing was applied: {answers.summary()}")
        point = best.record.point
        recommendation = Recommendation(sweep.model_key, sweep.device, point.precision, point.batch_size,
                                        point.max_wait_ms, sweep.id, self.core.guard.user, now_iso())
        if live:
            self.core.configure_engine(max_batch_size=point.batch_size, max_wait_ms=point.max_wait_ms)
        if save_default:
            self.store.save_recommendation(recommendation)
        self.core.guard.record("lab.apply", sweep.model_name, sweep=sweep.id, precision=point.precision,
                               max_batch_size=point.batch_size, max_wait_ms=point.max_wait_ms, sla=asdict(sla),
                               live=live, saved_as_default=save_default, device=sweep.device)
        info = self.core.model_info
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
