"""Who runs next: the waiting, preempted and running queues, and the rules that move requests between them.

Pure bookkeeping, as nano-vllm's scheduler is: no thread, no lock, no torch. The loop (engine/loop.py) owns
the thread and the model; it asks `schedule()` for the next prefill group, runs the forward pass, and reports
back what came of it. Continuous batching: waiting requests join the batch at every step (up to the max batch
size and the prefill budget) and finished or cancelled ones leave it at once.

Tests drive this class with plain objects. What it reads of them: of a waiting item (a request handle),
`cancel_requested`; of a sequence, `cancel_requested`, `done`, `token_count`, `generated`, `max_new_tokens`,
`context_limited` and `params.ignore_eos`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from engine.batching_settings import BatchingSettings
from engine.request import FinishReason

ADAPT_EVERY_STEPS = 16
STEP_TIME_WINDOW = 128  # recent decode steps the adaptive batch size looks at


@dataclass(frozen=True)
class OutOfMemoryBackOff:
    """What an out-of-memory step leads to: the batch re-queued under a smaller size, or one request failed."""

    requeued: int = 0  # sequences put back at the head of the queue, their text so far kept
    new_batch_size: int | None = None  # the lowered max batch size (None when nothing was re-queued)
    failed: list = field(default_factory=list)  # a sequence out of memory alone: nothing smaller can help it


class Scheduler:
    def __init__(self, settings: BatchingSettings | None = None):
        self.settings = (settings or BatchingSettings()).validate()
        self.waiting: deque = deque()  # request handles, not tokenised yet
        # Sequences that run before any waiting request: re-queued after out-of-memory, or deferred by the
        # prefill budget after they were prepared.
        self.preempted: deque = deque()
        self.running: list = []  # admitted sequences, in the order they were admitted
        self.step_times: deque[float] = deque(maxlen=STEP_TIME_WINDOW)  # seconds per decode step
        self._steps_since_adapt = 0

    # --- queues ------------------------------------------------------------------------------------------
    def add(self, handle: Any) -> None:
        self.waiting.append(handle)

    @property
    def waiting_count(self) -> int:
        return len(self.waiting) + len(self.preempted)

    def has_work(self) -> bool:
        return bool(self.waiting or self.preempted or self.running)

    def take_cancelled(self) -> tuple[list, list]:
        """Take out every request its caller cancelled: (waiting handles, started sequences)."""
        handles = [h for h in self.waiting if h.cancel_requested]
        sequences = [s for s in self.preempted if s.cancel_requested] + [s for s in self.running if s.cancel_requested]
        if handles:
            self.waiting = deque(h for h in self.waiting if not h.cancel_requested)
        if sequences:
            self.preempted = deque(s for s in self.preempted if not s.cancel_requested)
            self.running = [s for s in self.running if not s.cancel_requested]
        return handles, sequences

    def take_all(self) -> tuple[list, list]:
        """Empty every queue (the model went away, or the engine stops): (waiting handles, started sequences)."""
        handles, sequences = list(self.waiting), self.running + list(self.preempted)
        self.waiting, self.preempted, self.running = deque(), deque(), []
        return handles, sequences

    def remove_finished(self) -> None:
        self.running = [s for s in self.running if not s.done]

    # --- admission ---------------------------------------------------------------------------------------
    def schedule(self, prepare: Callable[[Any], Any]) -> list:
        """The sequences to prefill together now, already counted as running.

        Preempted sequences come first, then waiting requests in order, while the batch has room and the
        group's tokens fit the prefill budget; a longer prompt than the budget still runs, alone.
        `prepare(handle)` turns a waiting handle into a sequence, or returns None when it has dealt with the
        request itself (refused it, or answered it from the response cache)."""
        budget = self.settings.max_prefill_tokens
        group: list = []
        group_tokens = 0
        while len(self.running) + len(group) < self.settings.max_batch_size:
            if self.preempted:
                sequence = self.preempted.popleft()
            elif self.waiting:
                sequence = prepare(self.waiting.popleft())
                if sequence is None:
                    continue
            else:
                break
            if group and group_tokens + sequence.token_count > budget:
                self.preempted.appendleft(sequence)  # next step
                break
            group.append(sequence)
            group_tokens += sequence.token_count
        self.running.extend(group)
        return group

    # --- stop conditions ---------------------------------------------------------------------------------
    @staticmethod
    def is_end_of_text(sequence: Any, token: int, eos_token_ids: Iterable[int]) -> bool:
        return token in eos_token_ids and not sequence.params.ignore_eos

    @staticmethod
    def finish_reason(sequence: Any, end_of_text: bool, hit_stop_string: bool) -> FinishReason | None:
        """Why the sequence ends after the token it just took, or None while it goes on."""
        if end_of_text:
            return FinishReason.END_OF_TEXT
        if hit_stop_string:
            return FinishReason.STOP_STRING
        if len(sequence.generated) >= sequence.max_new_tokens:
            return FinishReason.CONTEXT_FULL if sequence.context_limited else FinishReason.MAX_TOKENS
        if sequence.cancel_requested:
            return FinishReason.CANCELLED
        return None

    # --- out of memory -----------------------------------------------------------------------------------
    def back_off_after_oom(self) -> OutOfMemoryBackOff:
        """The running batch ran out of memory: re-queue it, in order, under half the batch size.

        A sequence that runs out of memory alone cannot be helped: it is handed back to be failed."""
        victims, self.running = self.running, []
        if len(victims) <= 1:
            return OutOfMemoryBackOff(failed=victims)
        self.preempted.extendleft(reversed(victims))
        new_size = max(1, len(victims) // 2)
        self.settings = self.settings.changed(max_batch_size=new_size)
        return OutOfMemoryBackOff(requeued=len(victims), new_batch_size=new_size)

    # --- adaptive batch size -----------------------------------------------------------------------------
    def record_step_time(self, seconds: float) -> None:
        self.step_times.append(seconds)

    def step_time_p99_ms(self) -> float | None:
        times = sorted(self.step_times)
        return times[min(len(times) - 1, int(0.99 * len(times)))] * 1000 if times else None

    def adapt_batch_size(self) -> None:
        """Every ADAPT_EVERY_STEPS steps (once enough are measured): one smaller when the p99 decode step is
        over the target, one larger when it is well under it and requests are waiting."""
        settings = self.settings
        if not settings.adaptive or len(self.step_times) < ADAPT_EVERY_STEPS:
            return
        self._steps_since_adapt += 1
        if self._steps_since_adapt < ADAPT_EVERY_STEPS:
            return
        self._steps_since_adapt = 0
        p99_ms = self.step_time_p99_ms()
        size = settings.max_batch_size
        if p99_ms > settings.target_p99_ms and size > 1:
            size -= 1
        elif p99_ms < 0.7 * settings.target_p99_ms and self.waiting and size < settings.adaptive_max_batch_size:
            size += 1
        if size != settings.max_batch_size:
            self.settings = settings.changed(max_batch_size=size)
            self.step_times.clear()
