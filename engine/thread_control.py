"""How many intra-op threads the forward pass should use, decided from measured decode step times.

Pure policy: the scheduler's loop reports each decode step (its duration and batch rows) and applies the count
this returns with `torch.set_num_threads` on its own thread. Nothing here sleeps, locks or touches torch.

Why: PyTorch's OpenMP team runs one thread per core and waits for all of them at every parallel region. When
another program takes a core, the thread on it is descheduled and every region waits for it: measured beside one
busy core on two cores, int8 fell from 57.9 to 6.0 tok/s, while one thread ran at 37. So the controller:
- backs off at once when steps slow down sharply against the best this count has done for this batch size;
- probes its neighbours now and then (a short trial of the other count, kept when it is faster by a margin), so
  it finds its way back up when the other program ends, and down when contention was there from the start;
- spaces its probes out (doubling up to a ceiling) while they keep losing, and ends a losing probe after
  three steps, so an idle machine pays almost nothing for them;
- after moving to fewer threads, probes back up within a second, so a brief slowdown costs little.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

WINDOW_STEPS = 8  # steps a steady median is taken over
TRIAL_STEPS = 6  # steps a probe runs; its first one is not judged (it may pay for the new team)
SLOWDOWN = 1.6  # recent steps this many times the best seen for the count: contention, try one fewer at once
SLOWDOWN_STEPS = 3  # steps whose median is compared with the best
MARGIN = 0.92  # a trial count is kept when its median is under this fraction of the current one
LOSING = 1.15  # a trial whose judged steps run this much slower than the current count ends early
ABORT = 2.5  # a single judged step this much slower ends it at once (the other count is contended)
FIRST_PROBE_S = 3.0
# After moving to fewer threads, look back up this soon: a slowdown of a few steps (another program's burst, a
# long pause of the window's UI thread) is not contention, and at the regular 3 s one such back-off ran a fifth
# of a 256-token reply in the window on one thread. Under real contention this costs one extra losing probe.
RECHECK_S = 1.0
MAX_PROBE_S = 30.0


@dataclass
class _Trial:
    threads: int
    rows: int
    reference: float  # the current count's steady median when the trial began
    times: list[float] = field(default_factory=list)


class ThreadController:
    """Decides the thread count; `record()` each decode step, run the next one with `current` threads."""

    def __init__(self, max_threads: int, clock: Callable[[], float], pinned: int | None = None):
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self._clock = clock
        self._pinned: int | None = None
        self.threads = max_threads  # the settled count
        self.changes: list[str] = []  # why the settled count changed, oldest first (the loop may drain it)
        self._steady: list[float] = []  # recent step times at the settled count, all with self._rows rows
        self._rows = -1
        self._best: dict[tuple[int, int], float] = {}  # (threads, rows) -> best steady median seen
        self._trial: _Trial | None = None
        self._probe_gap = FIRST_PROBE_S
        self._next_probe = clock() + FIRST_PROBE_S
        self._probe_up_next = True
        self.pin(pinned)

    @property
    def pinned(self) -> int | None:
        return self._pinned

    @property
    def current(self) -> int:
        """The count the next step runs with (the trial's during a probe)."""
        return self._trial.threads if self._trial is not None else self.threads

    def pin(self, threads: int | None) -> int:
        """Fix the count (the admin's choice, clamped to 1..max), or None / 0 to adapt again. Returns `current`."""
        self._trial = None
        self._steady = []
        if threads is None or threads <= 0:
            self._pinned = None
        else:
            self._pinned = self.threads = max(1, min(int(threads), self.max_threads))
        return self.current

    def follow(self, setting: int) -> None:
        """Apply the admin's setting if it changed (0 adapts, n pins n threads); call once per step."""
        if (setting or None) != self._pinned:
            self.pin(setting)

    def record(self, step_s: float, rows: int) -> int:
        """A decode step of `rows` sequences took `step_s` at `current` threads; returns the count for the next."""
        if self._pinned is not None or self.max_threads == 1:
            return self.current
        if self._trial is not None:
            self._record_trial(step_s, rows)
            return self.current
        if rows != self._rows:  # another batch size: its step times are not comparable
            self._rows, self._steady = rows, []
        self._steady.append(step_s)
        key = (self.threads, rows)
        best = self._best.get(key)
        if best is not None and self.threads > 1 and len(self._steady) >= SLOWDOWN_STEPS:
            recent = statistics.median(self._steady[-SLOWDOWN_STEPS:])
            if recent > SLOWDOWN * best:  # no need to wait for a whole window: each such step costs a lot
                self._trial = _Trial(self.threads - 1, rows, recent)
                return self.current
        if len(self._steady) < WINDOW_STEPS:
            return self.current
        del self._steady[:-WINDOW_STEPS]
        median = statistics.median(self._steady)
        if best is None or median < best:
            self._best[key] = median
        if self._clock() >= self._next_probe:
            self._trial = _Trial(self._neighbour(), rows, median)
        return self.current

    def _neighbour(self) -> int:
        up, down = self.threads < self.max_threads, self.threads > 1
        if up and down:  # alternate between the two
            up, self._probe_up_next = self._probe_up_next, not self._probe_up_next
        return self.threads + 1 if up else self.threads - 1

    def _record_trial(self, step_s: float, rows: int) -> None:
        trial = self._trial
        if rows != trial.rows:  # the batch changed under the trial: call it off, without a verdict
            self._end_trial(keep=False)
            return
        trial.times.append(step_s)
        judged = trial.times[1:]
        if not judged:
            return
        median = statistics.median(judged)
        if median > ABORT * trial.reference or (len(judged) >= 2 and median > LOSING * trial.reference):
            self._end_trial(keep=False)
        elif len(trial.times) >= TRIAL_STEPS:
            self._end_trial(keep=median < MARGIN * trial.reference, median=median)

    def _end_trial(self, keep: bool, median: float | None = None) -> None:
        trial, self._trial = self._trial, None
        if keep:
            self.changes.append(f"{trial.threads} threads instead of {self.threads}: a step took "
                                f"{median * 1000:.1f} ms against {trial.reference * 1000:.1f} ms")
            if trial.threads < self.threads:  # giving up threads may have answered a brief slowdown: look back up soon
                self._probe_gap, self._probe_up_next = RECHECK_S, True
            else:
                self._probe_gap = FIRST_PROBE_S  # the machine changed: look again soon
            self.threads = trial.threads
            self._best[(trial.threads, trial.rows)] = median
        else:
            # What the current count does now is its new normal (a long context, say), not a slowdown to flee.
            self._best[(self.threads, trial.rows)] = trial.reference
            self._probe_gap = min(MAX_PROBE_S, self._probe_gap * 2)
        self._steady = []
        self._next_probe = self._clock() + self._probe_gap
