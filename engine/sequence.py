"""The state of one running request: its tokens, KV cache, sampler and text stream."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.request import FinishReason, GenerationResult, RequestHandle
from engine.text_stream import IncrementalDetokenizer, StopStringMatcher


@dataclass
class Sequence:
    handle: RequestHandle
    prompt_ids: list[int]
    max_new_tokens: int
    context_limited: bool  # max_new_tokens was cut to fit the context window
    generator: torch.Generator
    detokenizer: IncrementalDetokenizer
    stop_matcher: StopStringMatcher
    generated: list[int] = field(default_factory=list)
    cache: Any = None  # own KV cache between prefill and joining the batch
    cache_length: int = 0  # real tokens in this sequence's KV cache
    first_token_at: float | None = None
    cache_key: tuple | None = None  # response-cache key, for deterministic requests
    admitted_at: float = field(default_factory=time.perf_counter)  # left the queue (prepared for prefill)

    @property
    def params(self):
        return self.handle.request.params

    @property
    def token_count(self) -> int:
        """Tokens a prefill of this sequence runs: its prompt and what it generated before a preemption."""
        return len(self.prompt_ids) + len(self.generated)

    @property
    def cancel_requested(self) -> bool:
        return self.handle.cancel_requested

    @property
    def done(self) -> bool:
        return self.handle.done

    def append(self, token_id: int) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.generated.append(token_id)

    def read_text(self, token_id: int) -> tuple[str, bool]:
        """Decode the newest token: (text safe to stream now, whether a stop string was hit)."""
        return self.stop_matcher.feed(self.detokenizer.push(token_id))

    def seen_ids(self, device: torch.device) -> torch.Tensor:
        """Prompt and generated ids, for the repetition penalty (built only when a penalty applies)."""
        return torch.tensor(self.prompt_ids + self.generated, device=device)

    def finish(self, reason: FinishReason, error: str | None = None) -> GenerationResult:
        self.handle.emit_text(self.stop_matcher.flush() if reason is not FinishReason.STOP_STRING else "")
        now = time.perf_counter()
        submitted = self.handle.request.submitted_at
        count = len(self.generated)
        decode_span = now - self.first_token_at if self.first_token_at is not None else 0.0
        result = GenerationResult(
            request_id=self.handle.request_id,
            text=self.stop_matcher.text,
            finish_reason=reason,
            prompt_tokens=len(self.prompt_ids),
            completion_tokens=count,
            time_to_first_token_s=(self.first_token_at - submitted) if self.first_token_at is not None else None,
            total_s=now - submitted,
            tokens_per_second=(count - 1) / decode_span if count > 1 and decode_span > 0 else None,
            error=error,
            queue_wait_s=max(0.0, self.admitted_at - submitted),
        )
        self.handle.finish(result)
        return result


def fail_handle(handle: RequestHandle, reason: FinishReason, error: str | None = None) -> None:
    """Finish a request that never started running (rejected, cancelled while queued, or failed to prepare)."""
    handle.finish(
        GenerationResult(
            request_id=handle.request_id,
            text="",
            finish_reason=reason,
            total_s=time.perf_counter() - handle.request.submitted_at,
            error=error,
        )
    )
