"""The thread controller backs off when another program takes a core and probes back up when it leaves, driven
by a simulated two-core machine on a clock the test moves (no sleeps, no torch)."""

from __future__ import annotations

from engine.thread_control import ThreadController
from tests.engine_figures import ManualClock

# Seconds per decode step of one stream on the two-core VM (SmolLM2-135M int8): two threads are fastest on an
# idle machine; beside a busy core the team of two waits for its descheduled thread at every region.
IDLE = {1: 0.030, 2: 0.017}
BESIDE_A_BUSY_CORE = {1: 0.030, 2: 0.170}


class SimulatedMachine:
    def __init__(self, clock: ManualClock):
        self.clock = clock
        self.busy = False
        self.steps_at: dict[int, int] = {1: 0, 2: 0}

    def step(self, threads: int, rows: int = 1) -> float:
        seconds = (BESIDE_A_BUSY_CORE if self.busy else IDLE)[threads] * (1 + 0.1 * (rows - 1))
        self.clock.advance(seconds)
        self.steps_at[threads] += 1
        return seconds


def make(pinned: int | None = None) -> tuple[ThreadController, SimulatedMachine]:
    clock = ManualClock()
    return ThreadController(max_threads=2, clock=clock, pinned=pinned), SimulatedMachine(clock)


def run_for(controller: ThreadController, machine: SimulatedMachine, seconds: float, rows: int = 1) -> None:
    end = machine.clock.now + seconds
    while machine.clock.now < end:
        controller.record(machine.step(controller.current, rows), rows)


def test_an_idle_machine_keeps_every_thread_and_rarely_probes():
    controller, machine = make()
    run_for(controller, machine, 120)
    assert controller.threads == 2
    assert machine.steps_at[1] / sum(machine.steps_at.values()) < 0.01


def test_steps_that_slow_down_make_it_use_fewer_threads():
    controller, machine = make()
    run_for(controller, machine, 2)
    machine.busy = True
    run_for(controller, machine, 3)
    assert controller.threads == 1
    assert controller.changes[-1].startswith("1 threads instead of 2")


def test_it_probes_back_up_when_the_other_program_ends():
    controller, machine = make()
    run_for(controller, machine, 2)
    machine.busy = True
    run_for(controller, machine, 3)
    machine.busy = False
    run_for(controller, machine, 10)
    assert controller.threads == 2


def test_it_stays_down_while_the_other_program_runs():
    controller, machine = make()
    machine.busy = True
    run_for(controller, machine, 120)
    assert controller.threads == 1
    assert machine.steps_at[2] / sum(machine.steps_at.values()) < 0.05


def test_contention_from_the_first_step_is_found_by_probing():
    controller, machine = make()
    machine.busy = True
    run_for(controller, machine, 8)
    assert controller.threads == 1


def test_a_pinned_count_never_changes():
    controller, machine = make(pinned=2)
    machine.busy = True
    run_for(controller, machine, 30)
    assert controller.threads == 2 and machine.steps_at[1] == 0


def test_unpinning_adapts_again():
    controller, machine = make(pinned=2)
    machine.busy = True
    controller.follow(0)
    run_for(controller, machine, 8)
    assert controller.pinned is None and controller.threads == 1


def test_a_bigger_batch_is_not_taken_for_a_slowdown():
    controller, machine = make()
    run_for(controller, machine, 1.2, rows=1)
    run_for(controller, machine, 1.2, rows=8)  # 70 % longer steps: more rows, not contention
    assert controller.threads == 2 and machine.steps_at[1] == 0


def test_a_brief_slowdown_costs_about_a_second_on_fewer_threads():
    """Something that slows a few steps (another program's burst, a long pause of the window's UI thread) makes
    the controller back off; it must find its way back soon, not at the next regular probe 3 s later (in the
    window, one such back-off ran a fifth of a 256-token reply on one thread)."""
    controller, machine = make()
    run_for(controller, machine, 4)  # settled at two threads
    machine.busy = True
    run_for(controller, machine, 0.6)  # a burst: a few steps at the contended speed
    machine.busy = False
    assert controller.threads == 1  # it backed off
    ones = machine.steps_at[1]
    run_for(controller, machine, 5)
    assert controller.threads == 2
    seconds_on_one = (machine.steps_at[1] - ones) * IDLE[1]
    assert seconds_on_one < 1.5


def test_persistent_contention_pays_one_extra_probe_for_the_quick_recheck():
    controller, machine = make()
    run_for(controller, machine, 2)
    machine.busy = True
    twos = machine.steps_at[2]
    run_for(controller, machine, 60)
    assert controller.threads == 1
    # the steps at two threads while contended: the back-off's own three, then a couple for each losing probe
    seconds_on_two = (machine.steps_at[2] - twos) * BESIDE_A_BUSY_CORE[2]
    assert seconds_on_two < 3.0
