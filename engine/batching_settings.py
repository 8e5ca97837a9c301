"""The live batching knobs: read by the scheduler (engine/scheduler.py) at every step, no reload needed."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from engine.errors import InvalidRequest

MAX_WAIT_CAP_MS = 200.0
MAX_BATCH_SIZE = 1024  # the knob's upper limit: the settings and the Engine tab take it from here
MAX_THREADS = 1024  # the Threads knob's upper limit (0 adapts), taken from here as the batch size's is


@dataclass(frozen=True)
class BatchingSettings:
    max_batch_size: int = 8  # requests decoded together
    max_wait_ms: float = 5.0  # how long an idle engine waits for a batch to fill before starting
    max_prefill_tokens: int = 2048  # prompt tokens prefilled per step (one longer prompt still runs alone)
    queue_limit: int = 64  # waiting requests beyond this are rejected as busy
    adaptive: bool = False  # grow/shrink max_batch_size to keep p99 time per output token under the target
    target_p99_ms: float = 250.0
    adaptive_max_batch_size: int = 64
    response_cache: bool = True
    threads: int = 0  # intra-op threads of the forward pass: 0 adapts to the machine (engine/thread_control.py)

    def validate(self) -> "BatchingSettings":
        problems = []
        if not 1 <= self.max_batch_size <= MAX_BATCH_SIZE:
            problems.append(f"max batch size must be 1 to {MAX_BATCH_SIZE} (got {self.max_batch_size})")
        if not 0 <= self.max_wait_ms <= MAX_WAIT_CAP_MS:
            problems.append(f"max wait must be 0 to {MAX_WAIT_CAP_MS:.0f} ms (got {self.max_wait_ms})")
        if self.max_prefill_tokens < 1:
            problems.append(f"max prefill tokens must be at least 1 (got {self.max_prefill_tokens})")
        if self.queue_limit < 1:
            problems.append(f"queue limit must be at least 1 (got {self.queue_limit})")
        if self.target_p99_ms <= 0:
            problems.append(f"the p99 target must be above 0 ms (got {self.target_p99_ms})")
        if not 0 <= self.threads <= MAX_THREADS:
            problems.append(f"threads must be 0 (adapt) to {MAX_THREADS} (got {self.threads})")
        if self.adaptive_max_batch_size < 1:
            problems.append("the adaptive batch size cap must be at least 1")
        if problems:
            raise InvalidRequest("Invalid engine settings: " + "; ".join(problems) + ".")
        return self

    def changed(self, **changes) -> "BatchingSettings":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise InvalidRequest(f"Unknown engine setting(s): {', '.join(sorted(unknown))}.")
        return replace(self, **changes).validate()
