"""Which points a sweep plan measures: the default sweep skips batch caps that cannot bind or starve most users;
lists given by hand are measured as given."""

from __future__ import annotations

from console.lab.plan import PlannedPoint, SweepPlan, default_plan


def measured(plan: SweepPlan) -> list[tuple[int, int]]:
    return [(p.concurrency, p.batch_size) for p in plan.points()
            if p.precision == plan.precisions[0] and plan.skip_reason(p) is None]


def test_the_default_cpu_sweep_measures_each_level_with_batches_from_half_the_users_up():
    plan = default_plan("cpu")
    assert plan.batch_sizes == (2, 4, 8, 16) and plan.concurrency == (1, 2, 4, 8, 16)
    assert measured(plan) == [(1, 2), (2, 2), (4, 2), (4, 4), (8, 4), (8, 8), (16, 8), (16, 16)]


def test_a_batch_under_half_the_users_is_skipped_with_its_reason():
    plan = default_plan("cpu")
    reason = plan.skip_reason(PlannedPoint("int8", 2, 16, 5.0))
    assert reason == ("max batch size 2 serves under half of 16 users: the rest wait in the queue the whole run "
                      "(name the batch sizes to measure it)")
    assert plan.skip_reason(PlannedPoint("int8", 8, 16, 5.0)) is None  # exactly half: measured


def test_a_batch_that_cannot_bind_is_skipped_and_the_one_covering_every_user_kept():
    plan = default_plan("cpu")
    assert "cannot bind with 2 users: batch 2 already runs them all" in plan.skip_reason(PlannedPoint("fp32", 8, 2, 5.0))
    assert plan.skip_reason(PlannedPoint("fp32", 2, 1, 5.0)) is None


def test_a_plan_given_by_hand_measures_every_point():
    plan = SweepPlan(precisions=("fp32",), batch_sizes=(2, 16), concurrency=(1, 16)).validate()
    assert measured(plan) == [(1, 2), (1, 16), (16, 2), (16, 16)]


def test_a_plan_stored_before_the_starved_rule_still_reads_and_measures_as_it_did(tmp_path):
    old = ('{"precisions": ["int8"], "batch_sizes": [2, 4], "concurrency": [8], "max_wait_ms": [5.0], '
           '"repetitions": 3, "new_tokens": 32, "compile": "off", "skip_unbound_batches": true, '
           '"memory_limit_bytes": null}')
    plan = SweepPlan.from_json(old)
    assert plan.skip_starved_batches is False and measured(plan) == [(8, 2), (8, 4)]
