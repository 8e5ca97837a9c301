"""Sweeps on the tiny model: stored rows, SLA answers, apply, permissions, cancel and resume, memory skips."""

from __future__ import annotations

import json
import threading

import pytest

from console.access.guard import PermissionDenied
from console.errors import LabError
from console.lab.analysis import Sla
from console.lab.plan import SweepPlan
from console.lab.sweep_runner import SweepCancelled
from console.lab.sweep_store import Recommendation
from console.storage.timestamps import now_iso
from engine import ModelSpec
from tests.access_helpers import admin_core, core_as, raw_database
from tests.console.lab.lab_helpers import TINY_PLAN, run_tiny_sweep, tiny_target


@pytest.fixture(scope="module")
def lab_data(tmp_path_factory):
    return tmp_path_factory.mktemp("lab-data")


@pytest.fixture(scope="module")
def signed_in(lab_data):
    core, principal = admin_core(lab_data)
    yield core, principal
    core.shutdown()


@pytest.fixture(scope="module")
def lab_core(signed_in):
    return signed_in[0]


@pytest.fixture(scope="module")
def admin(signed_in):
    return signed_in[1]


@pytest.fixture(scope="module")
def finished_sweep(lab_core, admin, tiny_model_dir) -> int:
    return run_tiny_sweep(lab_core, admin, tiny_model_dir)


def test_a_2x2x2_sweep_completes_and_stores_every_point(lab_core, admin, lab_data, finished_sweep):
    sweep, points, precisions = lab_core.lab.sweep(admin, finished_sweep)
    assert sweep.state == "done"
    assert sorted(r.point.key for r in points) == sorted(p.key for p in TINY_PLAN.points())
    assert all(r.measured and r.summary.repetitions == 3 for r in points)
    assert set(precisions) == {"fp32", "int8"} and all(p.perplexity > 1 and p.weight_bytes > 0 for p in precisions.values())
    database = raw_database(lab_data)
    try:
        with database.read() as db:
            kinds = {row["kind"]: row["n"] for row in db.query(
                "select kind, count(*) as n from benchmark_results where sweep_id = ? group by kind", [finished_sweep])}
    finally:
        database.close()
    assert kinds == {"lab-repetition": 24, "lab-point": 8, "lab-precision": 2}


def test_repetitions_interleave_across_precisions(lab_data, finished_sweep):
    """Round r runs repetition r of every precision before any runs r + 1: drift moves both sides of a ratio."""
    database = raw_database(lab_data)
    try:
        with database.read() as db:
            order = [(row["repetition"], row["precision"]) for row in db.query(
                "select repetition, precision from benchmark_results where sweep_id = ? and kind = 'lab-repetition' "
                "order by id", [finished_sweep])]
    finally:
        database.close()
    assert [r for r, _p in order] == sorted(r for r, _p in order)  # every repetition 0, then every 1, then 2
    for repetition in range(3):
        assert [p for r, p in order if r == repetition] == ["fp32"] * 4 + ["int8"] * 4


def test_each_point_has_throughput_latency_and_memory_figures(lab_core, admin, finished_sweep):
    _sweep, points, _precisions = lab_core.lab.sweep(admin, finished_sweep)
    for record in points:
        f = record.summary.median
        assert f.output_tokens_per_s > 0 and f.tokens_per_s_per_user > 0 and f.requests_per_s > 0
        assert 0 < f.ttft_p50_s <= f.ttft_p99_s <= f.latency_p99_s
        assert f.itl_p50_s > 0 and f.peak_memory_bytes > 0 and f.errors == 0


def test_the_sweep_records_the_machine_it_ran_on(lab_core, admin, finished_sweep):
    import torch

    sweep, _points, _precisions = lab_core.lab.sweep(admin, finished_sweep)
    assert sweep.machine["torch"] == torch.__version__ and sweep.machine["cpu_cores"] >= 1 and sweep.machine["cpu"]


def test_the_recommendation_is_the_best_throughput_that_meets_the_sla(lab_core, admin, finished_sweep):
    judged = lab_core.lab.answers(admin, finished_sweep).judged
    limit = sorted(j.figures.ttft_p99_s for j in judged)[len(judged) // 2]
    answers = lab_core.lab.answers(admin, finished_sweep, Sla(ttft_p99_s=limit))
    meeting = [j for j in answers.judged if j.figures.ttft_p99_s <= limit]
    assert answers.recommendation.figures.ttft_p99_s <= limit
    assert answers.recommendation.figures.output_tokens_per_s == max(j.figures.output_tokens_per_s for j in meeting)
    assert answers.most_users.meets and answers.lowest_latency.meets


def test_the_lab_says_when_no_configuration_meets_the_sla(lab_core, admin, finished_sweep):
    answers = lab_core.lab.answers(admin, finished_sweep, Sla(ttft_p99_s=1e-9))
    assert answers.recommendation is None and answers.most_users is None
    assert "No configuration meets the SLA" in answers.summary()
    with pytest.raises(LabError, match="Nothing was applied"):
        lab_core.lab.apply(admin, finished_sweep, Sla(ttft_p99_s=1e-9))


def test_the_pareto_front_holds_no_dominated_point(lab_core, admin, finished_sweep):
    answers = lab_core.lab.answers(admin, finished_sweep)
    for j in answers.pareto:
        assert not any(o.figures.tokens_per_s_per_user > j.figures.tokens_per_s_per_user
                       and o.figures.output_tokens_per_s > j.figures.output_tokens_per_s for o in answers.judged)


def test_apply_sets_the_batching_knobs_and_is_audited(lab_core, admin, finished_sweep):
    lab_core.configure_engine(admin, max_batch_size=37)  # a value no point has
    outcome = lab_core.lab.apply(admin, finished_sweep)
    assert lab_core.engine_settings.max_batch_size == outcome.recommendation.max_batch_size
    applied = json.loads(lab_core.audit_entries(admin, action="lab.apply")[0].details)
    assert applied["sweep"] == finished_sweep and applied["precision"] == outcome.recommendation.precision
    configured = json.loads(lab_core.audit_entries(admin, action="engine.configure")[0].details)
    assert configured["new"]["max_batch_size"] == outcome.recommendation.max_batch_size


def test_apply_is_refused_without_engine_configure(lab_data, finished_sweep):
    tester, principal = core_as(lab_data, "tester")
    try:
        with pytest.raises(PermissionDenied, match="engine:configure"):
            tester.lab.apply(principal, finished_sweep)
    finally:
        tester.shutdown()


def test_a_sweep_is_refused_without_bench_run(lab_data, tiny_model_dir):
    tester, principal = core_as(lab_data, "tester")
    try:
        with pytest.raises(PermissionDenied, match="bench:run"):
            tester.lab.start(principal, tiny_target(tester, tiny_model_dir), TINY_PLAN, "cpu")
    finally:
        tester.shutdown()


def test_a_saved_recommendation_chooses_the_precision_of_an_auto_load(lab_core, admin, tiny_model_dir):
    target = tiny_target(lab_core, tiny_model_dir)
    lab_core.lab.store.save_recommendation(Recommendation(target.model_key, "cpu", "int8", 2, 3.0, None, "admin", now_iso()))
    info = lab_core.load(admin, ModelSpec(str(tiny_model_dir), precision="auto", device="cpu"))
    assert info.precision == "int8"
    assert lab_core.engine_settings.max_batch_size == 2 and lab_core.engine_settings.max_wait_ms == 3.0
    assert lab_core.load(admin, ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu")).precision == "fp32"


def test_cancel_keeps_the_finished_points_and_resume_skips_them(lab_core, admin, tiny_model_dir):
    plan = SweepPlan(precisions=("fp32",), batch_sizes=(1,), concurrency=(1, 2), repetitions=3, new_tokens=3)
    sweep = lab_core.lab.start(admin, tiny_target(lab_core, tiny_model_dir), plan, "cpu")
    cancel = threading.Event()

    def cancel_after_first_point(step) -> None:  # repetitions interleave: the first point ends at the fifth
        if step.done == 5:
            cancel.set()

    with pytest.raises(SweepCancelled):
        lab_core.lab.run(admin, sweep.id, cancel_after_first_point, cancel)
    _sweep, points, _precisions = lab_core.lab.sweep(admin, sweep.id)
    assert _sweep.state == "cancelled" and [r.point.concurrency for r in points] == [1]
    counts_before = lab_core.lab.store.repetition_counts(sweep.id)
    assert counts_before == {points[0].point.key: 3, "fp32/b1/c2/w5": 2}

    lab_core.lab.run(admin, sweep.id)
    resumed, points, _precisions = lab_core.lab.sweep(admin, sweep.id)
    assert resumed.state == "done" and [r.point.concurrency for r in points] == [1, 2]
    assert lab_core.lab.store.repetition_counts(sweep.id) == {"fp32/b1/c1/w5": 3, "fp32/b1/c2/w5": 3}


def test_a_point_that_will_not_fit_is_skipped_with_its_reason(lab_core, admin, tiny_model_dir):
    target = tiny_target(lab_core, tiny_model_dir)
    plan = SweepPlan(precisions=("fp32",), batch_sizes=(1, 4096), concurrency=(1,), repetitions=3, new_tokens=3)
    small, large = (lab_core.estimate_path(target.model_path, "fp32", "cpu", b, plan.context_tokens) for b in (1, 4096))
    capped = SweepPlan(**{**plan.__dict__, "memory_limit_bytes": (small.total_bytes + large.total_bytes) // 2})
    sweep = lab_core.lab.start(admin, target, capped, "cpu")
    lab_core.lab.run(admin, sweep.id)
    _sweep, points, _precisions = lab_core.lab.sweep(admin, sweep.id)
    skipped = {r.point.batch_size: r.skip_reason for r in points if not r.measured}
    assert list(skipped) == [4096] and "will not fit" in skipped[4096] and "KV cache" in skipped[4096]
    assert [r.point.batch_size for r in points if r.measured] == [1]


def test_a_plan_with_too_few_repetitions_is_refused(lab_core, admin, tiny_model_dir):
    with pytest.raises(LabError, match="at least 3 repetitions"):
        lab_core.lab.start(admin, tiny_target(lab_core, tiny_model_dir), SweepPlan(("fp32",), (1,), (1,), repetitions=2), "cpu")
