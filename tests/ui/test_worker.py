"""The one worker helper: progress, result and error of work in a thread reach the UI thread one way."""

from __future__ import annotations

import threading

import pytest

from console.errors import ConsoleError, HashingCancelled
from ui.adapters.worker import Worker


@pytest.fixture
def outcomes(qapp):
    """Every signal a worker emits, with the thread it reached."""
    return []


def watched(work, outcomes: list, what: str = "Loading") -> Worker:
    worker = Worker(work, "test-worker", what)
    for name in ("progressed", "returned", "failed", "cancelled"):
        getattr(worker, name).connect(
            lambda value, name=name: outcomes.append((name, value, threading.get_ident(), worker.running)))
    return worker


def test_progress_then_the_result_arrive_in_order_on_the_ui_thread(qtbot, outcomes):
    def work(worker: Worker) -> int:
        for step in range(3):
            worker.report(step, f"step {step}")
        return 42

    worker = watched(work, outcomes)
    with qtbot.waitSignal(worker.returned, timeout=5_000):
        worker.start()
    assert [(name, value) for name, value, _thread, _running in outcomes] == [
        ("progressed", (0, "step 0")), ("progressed", (1, "step 1")), ("progressed", (2, "step 2")), ("returned", 42)]
    assert {thread for _name, _value, thread, _running in outcomes} == {threading.main_thread().ident}


def test_the_job_counts_as_done_before_the_callers_slot_sees_its_outcome(qtbot, outcomes):
    worker = watched(lambda _worker: "done", outcomes)
    with qtbot.waitSignal(worker.returned, timeout=5_000):
        worker.start()
        assert worker.running
    assert outcomes[-1][3] is False


def test_an_error_a_user_can_cause_fails_with_its_own_message(qtbot, outcomes):
    def work(_worker):
        raise ConsoleError("The disk is full. Free some space and import again.")

    worker = watched(work, outcomes)
    with qtbot.waitSignal(worker.failed, timeout=5_000):
        worker.start()
    assert outcomes[-1][:2] == ("failed", "The disk is full. Free some space and import again.")


def test_an_unexpected_error_fails_naming_the_job(qtbot, outcomes):
    def work(_worker):
        raise RuntimeError("boom")

    worker = watched(work, outcomes, what="Perplexity")
    with qtbot.waitSignal(worker.failed, timeout=5_000):
        worker.start()
    assert outcomes[-1][:2] == ("failed", "Perplexity failed: boom")


def test_cancelling_reaches_the_work_and_ends_as_cancelled(qtbot, outcomes):
    started = threading.Event()

    def work(worker: Worker):
        started.set()
        if not worker.cancel_requested.wait(5):
            return "not cancelled"
        raise HashingCancelled("Import cancelled; nothing was registered.")

    worker = watched(work, outcomes)
    with qtbot.waitSignal(worker.cancelled, timeout=10_000):
        worker.start()
        assert started.wait(5)
        worker.cancel()
    assert outcomes[-1][:2] == ("cancelled", "Import cancelled; nothing was registered.")
