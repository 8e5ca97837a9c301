"""The JSON the API answers with, in OpenAI's shapes: completions, their streamed chunks, usage and the
opt-in `timings` (as llama.cpp's server adds them)."""

from __future__ import annotations

import json
import time
import uuid

from engine import FinishReason, GenerationResult

FINISH_REASONS = {
    FinishReason.END_OF_TEXT: "stop",
    FinishReason.STOP_STRING: "stop",
    FinishReason.MAX_TOKENS: "length",
    FinishReason.CONTEXT_FULL: "length",
}


class CompletionShape:
    """One response's id, time and model, and how its pieces look, for chat or plain completions."""

    def __init__(self, chat: bool, model: str, timings: bool):
        self.chat = chat
        self.model = model
        self.timings = timings
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def _envelope(self, chunk: bool) -> dict:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def full(self, result: GenerationResult) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": result.text},
                      "logprobs": None, "finish_reason": FINISH_REASONS[result.finish_reason]}
        else:
            choice = {"index": 0, "text": result.text, "logprobs": None,
                      "finish_reason": FINISH_REASONS[result.finish_reason]}
        body = {**self._envelope(chunk=False), "choices": [choice], "usage": usage(result)}
        if self.timings:
            body["timings"] = timings(result)
        return body

    def piece(self, text: str, first: bool) -> dict:
        if self.chat:
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": None}
        return {**self._envelope(chunk=True), "choices": [choice]}

    def last(self, result: GenerationResult, first: bool) -> dict:
        """The chunk that carries the one finish_reason (and the role, when no text came before it)."""
        reason = FINISH_REASONS[result.finish_reason]
        if self.chat:
            delta = {"role": "assistant", "content": ""} if first else {}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": reason}
        body = {**self._envelope(chunk=True), "choices": [choice]}
        if self.timings:
            body["timings"] = timings(result)
        return body

    def usage_chunk(self, result: GenerationResult) -> dict:
        return {**self._envelope(chunk=True), "choices": [], "usage": usage(result)}


def usage(result: GenerationResult) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


def timings(result: GenerationResult) -> dict:
    ttft = result.time_to_first_token_s
    decode_s = result.total_s - ttft if ttft is not None else None
    return {
        "prompt_n": result.prompt_tokens,
        "predicted_n": result.completion_tokens,
        "time_to_first_token_ms": round(ttft * 1000, 3) if ttft is not None else None,
        "predicted_ms": round(decode_s * 1000, 3) if decode_s is not None else None,
        "predicted_per_second": round(result.tokens_per_second, 3) if result.tokens_per_second else None,
        "total_ms": round(result.total_s * 1000, 3),
        "cached": result.cached,
    }


def sse(payload: dict | str) -> bytes:
    """One server-sent event: `data: <json>` and a blank line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode("utf-8")
