"""Scripted engine figures for telemetry tests: the real EngineMetrics fed with chosen request results and
queue counts, on a clock the test moves, so a test can produce a p99 or a queue depth without waiting for real
generation."""

from __future__ import annotations

from engine.metrics import EngineMetrics, EngineSnapshot
from engine.request import FinishReason, GenerationResult


class ManualClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedEngineFigures:
    def __init__(self, max_batch_size: int = 8):
        self.clock = ManualClock()
        self.metrics = EngineMetrics(clock=self.clock)
        self.waiting = 0
        self.running = 0
        self.max_batch_size = max_batch_size

    def finish(self, total_s: float, ttft_s: float = 0.05, tokens: int = 16, reason=FinishReason.MAX_TOKENS,
               queue_wait_s: float = 0.001) -> None:
        self.metrics.record_prefill(8)
        self.metrics.record_decode(tokens)
        self.metrics.record_result(
            GenerationResult(0, "", reason, prompt_tokens=8, completion_tokens=tokens, time_to_first_token_s=ttft_s,
                             total_s=total_s, queue_wait_s=queue_wait_s)
        )

    def snapshot(self) -> EngineSnapshot:
        return self.metrics.snapshot(self.waiting, self.running, self.max_batch_size)
