"""Scripted engine figures for telemetry tests: the real EngineMetrics fed with chosen request results and
queue counts, so a test can produce a p99 latency or a queue depth without waiting for real generation."""

from __future__ import annotations

from engine.metrics import EngineMetrics, EngineSnapshot
from engine.request import FinishReason, GenerationResult


class ScriptedEngineFigures:
    def __init__(self, max_batch_size: int = 8):
        self.metrics = EngineMetrics()
        self.waiting = 0
        self.running = 0
        self.max_batch_size = max_batch_size

    def finish(self, total_s: float, ttft_s: float = 0.05, tokens: int = 16, reason=FinishReason.MAX_TOKENS) -> None:
        self.metrics.record_prefill(8)
        self.metrics.record_decode(tokens)
        self.metrics.record_result(
            GenerationResult(0, "", reason, prompt_tokens=8, completion_tokens=tokens, time_to_first_token_s=ttft_s,
                             total_s=total_s)
        )

    def snapshot(self) -> EngineSnapshot:
        return self.metrics.snapshot(self.waiting, self.running, self.max_batch_size)
