"""A tiny sweep for the lab's tests: two precisions × two batch sizes × two concurrency levels, few tokens."""

from __future__ import annotations

from console.lab.plan import SweepPlan
from engine import ModelSpec

TINY_PLAN = SweepPlan(precisions=("fp32", "int8"), batch_sizes=(1, 2), concurrency=(1, 2), repetitions=3, new_tokens=4)


def tiny_target(core, tiny_model_dir):
    return core.lab.target(ModelSpec(str(tiny_model_dir), device="cpu", name="tiny-llama"))


def run_tiny_sweep(core, principal, tiny_model_dir, plan: SweepPlan = TINY_PLAN, **run_options):
    sweep = core.lab.start(principal, tiny_target(core, tiny_model_dir), plan, "cpu")
    core.lab.run(principal, sweep.id, **run_options)
    return sweep.id
