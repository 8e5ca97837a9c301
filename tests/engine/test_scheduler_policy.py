"""The scheduler's policy, driven directly: admission, stop conditions, out-of-memory back-off, adaptive size.

No thread, no model: requests are plain objects with the few fields the scheduler reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from engine.batching_settings import BatchingSettings
from engine.request import FinishReason
from engine.scheduler import ADAPT_EVERY_STEPS, Scheduler


@dataclass
class PlainRequest:
    """Stands for both a waiting handle and its prepared sequence (the scheduler reads the same fields)."""

    name: str
    token_count: int = 10
    max_new_tokens: int = 100
    context_limited: bool = False
    generated: list[int] = field(default_factory=list)
    cancel_requested: bool = False
    done: bool = False
    params: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(ignore_eos=False))


def scheduler_with(*requests: PlainRequest, **settings) -> Scheduler:
    scheduler = Scheduler(BatchingSettings(**settings))
    for request in requests:
        scheduler.add(request)
    return scheduler


def names(sequences) -> list[str]:
    return [s.name for s in sequences]


def prepared(request):
    return request


def test_admission_stops_at_the_max_batch_size():
    scheduler = scheduler_with(*(PlainRequest(f"r{i}") for i in range(5)), max_batch_size=3)
    assert names(scheduler.schedule(prepared)) == ["r0", "r1", "r2"]
    assert names(scheduler.waiting) == ["r3", "r4"]
    assert scheduler.schedule(prepared) == [], "the batch is full until a running request leaves"


def test_admission_fills_the_room_a_finished_request_leaves():
    scheduler = scheduler_with(*(PlainRequest(f"r{i}") for i in range(4)), max_batch_size=2)
    first, _second = scheduler.schedule(prepared)
    first.done = True
    scheduler.remove_finished()
    assert names(scheduler.schedule(prepared)) == ["r2"]
    assert names(scheduler.running) == ["r1", "r2"]


def test_admission_keeps_the_group_within_the_prefill_budget():
    requests = [PlainRequest("a", token_count=60), PlainRequest("b", token_count=30), PlainRequest("c", token_count=20)]
    scheduler = scheduler_with(*requests, max_prefill_tokens=100)
    assert names(scheduler.schedule(prepared)) == ["a", "b"]
    assert names(scheduler.schedule(prepared)) == ["c"], "the deferred request runs at the next step"


def test_a_prompt_longer_than_the_budget_runs_alone():
    requests = [PlainRequest("long", token_count=500), PlainRequest("short", token_count=5)]
    scheduler = scheduler_with(*requests, max_prefill_tokens=100)
    assert names(scheduler.schedule(prepared)) == ["long"]
    assert names(scheduler.schedule(prepared)) == ["short"]


def test_a_request_its_preparation_dealt_with_takes_no_slot():
    scheduler = scheduler_with(PlainRequest("cached"), PlainRequest("new"), max_batch_size=1)
    group = scheduler.schedule(lambda request: None if request.name == "cached" else request)
    assert names(group) == ["new"]


def test_out_of_memory_halves_the_batch_and_requeues_it_in_order_ahead_of_the_waiting():
    scheduler = scheduler_with(*(PlainRequest(f"r{i}") for i in range(5)), max_batch_size=4)
    scheduler.schedule(prepared)
    back_off = scheduler.back_off_after_oom()
    assert (back_off.requeued, back_off.new_batch_size, back_off.failed) == (4, 2, [])
    assert scheduler.settings.max_batch_size == 2
    assert scheduler.running == []
    assert names(scheduler.schedule(prepared)) == ["r0", "r1"]
    assert names(scheduler.schedule(prepared)) == [], "the smaller batch is full"
    assert names(scheduler.preempted) == ["r2", "r3"] and names(scheduler.waiting) == ["r4"]


def test_out_of_memory_alone_fails_that_request_and_keeps_the_batch_size():
    scheduler = scheduler_with(PlainRequest("alone"), PlainRequest("next"), max_batch_size=1)
    scheduler.schedule(prepared)
    back_off = scheduler.back_off_after_oom()
    assert names(back_off.failed) == ["alone"] and back_off.requeued == 0
    assert scheduler.settings.max_batch_size == 1
    assert names(scheduler.schedule(prepared)) == ["next"]


def adaptive_scheduler(step_ms: float, waiting: int = 1, **settings) -> Scheduler:
    scheduler = scheduler_with(*(PlainRequest(f"w{i}") for i in range(waiting)), adaptive=True, target_p99_ms=100.0,
                               max_batch_size=4, **settings)
    for _ in range(ADAPT_EVERY_STEPS):
        scheduler.record_step_time(step_ms / 1000)
    return scheduler


def adapt_for_a_round(scheduler: Scheduler) -> None:
    for _ in range(ADAPT_EVERY_STEPS):
        scheduler.adapt_batch_size()


def test_adaptive_sizing_grows_the_batch_when_steps_are_fast_and_requests_wait():
    scheduler = adaptive_scheduler(step_ms=50.0)
    adapt_for_a_round(scheduler)
    assert scheduler.settings.max_batch_size == 5
    assert not scheduler.step_times, "a new size is measured afresh"


def test_adaptive_sizing_does_not_grow_without_waiting_requests():
    scheduler = adaptive_scheduler(step_ms=50.0, waiting=0)
    adapt_for_a_round(scheduler)
    assert scheduler.settings.max_batch_size == 4


def test_adaptive_sizing_shrinks_the_batch_when_the_p99_step_is_over_the_target():
    scheduler = adaptive_scheduler(step_ms=150.0)
    adapt_for_a_round(scheduler)
    assert scheduler.settings.max_batch_size == 3


def test_adaptive_sizing_waits_for_a_round_of_steps():
    scheduler = adaptive_scheduler(step_ms=150.0)
    for _ in range(ADAPT_EVERY_STEPS - 1):
        scheduler.adapt_batch_size()
    assert scheduler.settings.max_batch_size == 4


def test_cancel_takes_a_request_out_of_every_queue_at_once():
    requests = [PlainRequest(f"r{i}") for i in range(4)]
    scheduler = scheduler_with(*requests, max_batch_size=2)
    scheduler.schedule(prepared)
    scheduler.preempted.append(PlainRequest("preempted", cancel_requested=True))
    requests[0].cancel_requested = True  # running
    requests[3].cancel_requested = True  # waiting
    handles, sequences = scheduler.take_cancelled()
    assert names(handles) == ["r3"]
    assert sorted(names(sequences)) == ["preempted", "r0"]
    assert names(scheduler.running) == ["r1"] and names(scheduler.waiting) == ["r2"] and not scheduler.preempted


def test_end_of_text_comes_first_unless_ignored():
    sequence = PlainRequest("s")
    assert Scheduler.is_end_of_text(sequence, 2, {2})
    assert Scheduler.finish_reason(sequence, end_of_text=True, hit_stop_string=True) is FinishReason.END_OF_TEXT
    sequence.params.ignore_eos = True
    assert not Scheduler.is_end_of_text(sequence, 2, {2})


def test_stop_string_then_length_then_cancel_end_a_sequence():
    sequence = PlainRequest("s", max_new_tokens=2, generated=[5], cancel_requested=True)
    assert Scheduler.finish_reason(sequence, False, hit_stop_string=True) is FinishReason.STOP_STRING
    assert Scheduler.finish_reason(sequence, False, False) is FinishReason.CANCELLED
    sequence.generated.append(6)
    assert Scheduler.finish_reason(sequence, False, False) is FinishReason.MAX_TOKENS
    sequence.context_limited = True
    assert Scheduler.finish_reason(sequence, False, False) is FinishReason.CONTEXT_FULL


def test_a_sequence_under_its_limits_goes_on():
    assert Scheduler.finish_reason(PlainRequest("s", generated=[1]), False, False) is None
