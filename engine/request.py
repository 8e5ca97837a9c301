"""One generation request, its result, and the handle through which a caller streams and cancels it."""

from __future__ import annotations

import enum
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from engine.errors import EngineError, InvalidRequest
from engine.sampling_params import SamplingParams

log = logging.getLogger(__name__)


class FinishReason(str, enum.Enum):
    END_OF_TEXT = "end_of_text"  # the model emitted its end-of-sequence token
    STOP_STRING = "stop_string"
    MAX_TOKENS = "max_tokens"
    CONTEXT_FULL = "context_full"
    CANCELLED = "cancelled"
    ERROR = "error"

    @property
    def label(self) -> str:
        return {
            FinishReason.END_OF_TEXT: "end of text",
            FinishReason.STOP_STRING: "stop string",
            FinishReason.MAX_TOKENS: "max tokens",
            FinishReason.CONTEXT_FULL: "context full",
            FinishReason.CANCELLED: "cancelled",
            FinishReason.ERROR: "error",
        }[self]


_request_ids = itertools.count(1)


@dataclass
class GenerationRequest:
    """Either chat `messages` (the model's chat template is applied) or a raw `prompt`."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    request_id: int = field(default_factory=lambda: next(_request_ids))
    submitted_at: float = field(default_factory=time.perf_counter)

    def validate(self) -> None:
        """Raise InvalidRequest for what a user can get wrong, before any work (or a model load) starts."""
        self.params.validate()
        if self.messages is None and not (self.prompt or "").strip():
            raise InvalidRequest("The prompt is empty. Type a message first.")
        texts = [("the prompt", self.prompt or "")] + [
            (f"the {message.get('role', 'chat')} message", message.get("content", "")) for message in self.messages or []
        ] + [("a stop string", stop) for stop in self.params.stop]
        for what, text in texts:
            check_text(text, what)
        if self.messages is not None:
            user_texts = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
            if not any(text.strip() for text in user_texts):
                raise InvalidRequest("The message is empty. Type a message first.")


def check_text(text: str, what: str) -> None:
    """Refuse text that is not valid Unicode: bytes that were not UTF-8 (a terminal in another encoding) arrive
    as lone surrogates, which no tokenizer can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequest(
            f"{what[0].upper()}{what[1:]} holds bytes that are not UTF-8 text (at character {error.start + 1}). "
            "Set the terminal to UTF-8, or retype the text."
        ) from None


@dataclass
class GenerationResult:
    request_id: int
    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_s: float | None = None
    total_s: float = 0.0
    tokens_per_second: float | None = None
    error: str | None = None
    cached: bool = False  # answered from the response cache
    queue_wait_s: float | None = None  # from submission to admission into the batch

    @property
    def inter_token_s(self) -> float | None:
        """Mean time between output tokens after the first (the stream's pace), or None for one token."""
        if self.time_to_first_token_s is None or self.completion_tokens < 2:
            return None
        return max(0.0, self.total_s - self.time_to_first_token_s) / (self.completion_tokens - 1)

    @property
    def ok(self) -> bool:
        return self.finish_reason is not FinishReason.ERROR


@dataclass(frozen=True)
class StreamEvent:
    """What a handle's callback receives: a piece of text, or the final result (text is then empty)."""

    request_id: int
    text: str = ""
    result: GenerationResult | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None


class GenerationFailed(EngineError):
    """Raised by iterating a handle or asking for its result when the request ended in an error."""


class RequestHandle:
    """The caller's side of a request: iterate for text pieces, `cancel()`, or wait for `result()`.

    The callback, if given, runs on the engine's loop thread: it must return quickly (queue or emit a
    signal). If it raises, this request ends with an error; the others carry on.
    The producer methods below (`emit_text`, `finish`, `add_finish_listener`) belong to the engine.
    """

    def __init__(self, request: GenerationRequest, on_event: Callable[[StreamEvent], None] | None = None):
        self.request = request
        self._on_event = on_event
        self._pieces: queue.SimpleQueue[StreamEvent] = queue.SimpleQueue()
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._result: GenerationResult | None = None
        self._finish_listeners: list[Callable[[GenerationResult], None]] = []
        self.callback_error: Exception | None = None  # the first error the callback raised

    @property
    def request_id(self) -> int:
        return self.request.request_id

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Ask the engine to stop this request; it finishes with reason `cancelled` at the next step."""
        self._cancelled.set()

    def result(self, timeout: float | None = None) -> GenerationResult:
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.request_id} did not finish within {timeout} s")
        assert self._result is not None
        return self._result

    def __iter__(self) -> Iterator[str]:
        while True:
            event = self._pieces.get()
            if event.result is not None:
                if event.result.finish_reason is FinishReason.ERROR:
                    raise GenerationFailed(event.result.error or "generation failed")
                return
            yield event.text

    # --- producer side: called by the engine's loop thread only, never by a caller ---------------------
    def add_finish_listener(self, listener: Callable[[GenerationResult], None]) -> None:
        """Call `listener(result)` when the request finishes, before its final event is published."""
        self._finish_listeners.append(listener)

    def emit_text(self, text: str) -> None:
        """Stream a piece of the reply (nothing for an empty piece)."""
        if text:
            self._publish(StreamEvent(self.request_id, text=text))

    def finish(self, result: GenerationResult) -> None:
        """End the request with its result; a second call does nothing."""
        if self._done.is_set():
            return
        self._result = result
        self._done.set()
        for listener in self._finish_listeners:
            listener(result)
        self._publish(StreamEvent(self.request_id, result=result))

    def _publish(self, event: StreamEvent) -> None:
        self._pieces.put(event)  # first: iterating and result() see the event whatever the callback does
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception as error:  # the caller's code must not break the engine's loop: it ends this request
            if self.callback_error is None:
                log.exception("the stream callback of request %d raised", self.request_id)
                self.callback_error = error
