"""The scheduler thread: owns the model, admits queued requests into the running set, and steps them.

Requests join the running set at any step (up to `max_batch_size`) and leave it as soon as they finish
or are cancelled, so a new request never waits for others to drain. Callers only see `RequestHandle`s.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import deque

import torch

from engine.errors import EngineBusy, NoModelLoaded, PromptTooLong
from engine.loader import LoadedModel
from engine.metrics import EngineMetrics, EngineSnapshot
from engine.model_runner import ModelRunner
from engine.request import FinishReason, RequestHandle
from engine.sampling import make_generator
from engine.sequence import Sequence, fail_handle
from engine.text_stream import IncrementalDetokenizer, StopStringMatcher

log = logging.getLogger(__name__)

OUT_OF_MEMORY_MESSAGE = (
    "Out of memory while generating. Try a shorter conversation, fewer requests at once, or a lower precision."
)


def build_prompt_ids(loaded: LoadedModel, handle: RequestHandle) -> list[int]:
    request = handle.request
    tokenizer = loaded.tokenizer
    if request.messages is not None:
        if loaded.info.has_chat_template:
            text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        else:  # a base model without a template: a plain transcript it can continue
            text = "".join(f"{m['role']}: {m['content']}\n" for m in request.messages) + "assistant:"
        return tokenizer(text, add_special_tokens=not loaded.info.has_chat_template)["input_ids"]
    return tokenizer(request.prompt)["input_ids"]


class Scheduler:
    def __init__(self, max_batch_size: int = 4, queue_limit: int = 64):
        self.max_batch_size = max_batch_size
        self.queue_limit = queue_limit
        self._condition = threading.Condition()
        self._waiting: deque[RequestHandle] = deque()
        self._running: list[Sequence] = []
        self._loaded: LoadedModel | None = None
        self._runner: ModelRunner | None = None
        self._swap: tuple[LoadedModel | None, threading.Event] | None = None
        self._stopping = False
        self.metrics = EngineMetrics()
        self._thread = threading.Thread(target=self._run, name="llm-console-scheduler", daemon=True)
        self._thread.start()

    # --- caller side -------------------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def submit(self, handle: RequestHandle) -> None:
        with self._condition:
            if self._loaded is None or self._swap is not None and self._swap[0] is None:
                raise NoModelLoaded("No model is loaded. Load a model first.")
            if len(self._waiting) >= self.queue_limit:
                raise EngineBusy(f"The engine is busy: {len(self._waiting)} requests are already waiting. Try again shortly.")
            handle._finish_listeners.append(self.metrics.record_result)
            self._waiting.append(handle)
            self._condition.notify_all()

    def swap_model(self, loaded: LoadedModel | None, timeout: float | None = None) -> None:
        """Replace (or with None, drop) the model between two steps; requests in flight end with an error."""
        applied = threading.Event()
        with self._condition:
            self._swap = (loaded, applied)
            self._condition.notify_all()
        applied.wait(timeout)

    def snapshot(self) -> EngineSnapshot:
        waiting, running = self.counts()
        return self.metrics.snapshot(waiting, running, self.max_batch_size)

    def counts(self) -> tuple[int, int]:
        """(waiting, running)"""
        with self._condition:
            return len(self._waiting), len(self._running)

    def stop(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join(timeout)

    # --- scheduler thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._condition:
                while not (self._stopping or self._swap or self._waiting or self._running):
                    self._condition.wait()
                if self._stopping:
                    break
                swap, self._swap = self._swap, None
            if swap is not None:
                self._apply_swap(*swap)
            self._drop_cancelled_waiting()
            self._admit()
            self._decode_step()
        self._end_all("The engine was shut down.")
        self._release_model()

    def _apply_swap(self, loaded: LoadedModel | None, applied: threading.Event) -> None:
        self._end_all("The model was unloaded while this request ran.")
        self._release_model()
        self._loaded = loaded
        self._runner = ModelRunner(loaded) if loaded is not None else None
        applied.set()

    def _release_model(self) -> None:
        device = self._loaded.device if self._loaded is not None else None
        self._loaded = self._runner = None
        gc.collect()
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()

    def _end_all(self, message: str) -> None:
        with self._condition:
            waiting, self._waiting = list(self._waiting), deque()
        for handle in waiting:
            fail_handle(handle, FinishReason.ERROR, message)
        for sequence in self._running:
            sequence.finish(FinishReason.ERROR, message)
        self._running = []

    def _drop_cancelled_waiting(self) -> None:
        with self._condition:
            cancelled = [h for h in self._waiting if h.cancel_requested]
            for handle in cancelled:
                self._waiting.remove(handle)
        for handle in cancelled:
            fail_handle(handle, FinishReason.CANCELLED)

    def _admit(self) -> None:
        while len(self._running) < self.max_batch_size:
            with self._condition:
                if not self._waiting:
                    return
                handle = self._waiting.popleft()
            if self._loaded is None:
                fail_handle(handle, FinishReason.ERROR, "No model is loaded. Load a model first.")
                continue
            try:
                sequence = self._prepare(handle)
                first_token = self._runner.prefill(sequence)
            except PromptTooLong as error:
                fail_handle(handle, FinishReason.ERROR, str(error))
                continue
            except torch.OutOfMemoryError:
                fail_handle(handle, FinishReason.ERROR, OUT_OF_MEMORY_MESSAGE)
                continue
            except Exception as error:  # a failing request must not take the engine down
                log.exception("prefill failed")
                fail_handle(handle, FinishReason.ERROR, f"Generation failed: {error}")
                continue
            self.metrics.record_prefill(len(sequence.prompt_ids))
            self.metrics.record_decode(1)
            self._running.append(sequence)
            self._accept_token(sequence, first_token)
        self._running = [s for s in self._running if not s.handle.done]

    def _prepare(self, handle: RequestHandle) -> Sequence:
        loaded = self._loaded
        prompt_ids = build_prompt_ids(loaded, handle)
        context = loaded.info.context_length
        if len(prompt_ids) >= context:
            raise PromptTooLong(
                f"The prompt is {len(prompt_ids):,} tokens, but {loaded.info.name} has a context window of "
                f"{context:,} tokens. Shorten the message or start a new conversation."
            )
        params = handle.request.params
        room = context - len(prompt_ids)
        return Sequence(
            handle=handle,
            prompt_ids=prompt_ids,
            max_new_tokens=min(params.max_new_tokens, room),
            context_limited=params.max_new_tokens > room,
            generator=make_generator(params.seed, loaded.device),
            detokenizer=IncrementalDetokenizer(loaded.tokenizer, prompt_ids),
            stop_matcher=StopStringMatcher(params.stop),
            seen_ids=torch.tensor(prompt_ids, device=loaded.device),
        )

    def _decode_step(self) -> None:
        for sequence in self._running:
            if sequence.handle.cancel_requested:
                sequence.finish(FinishReason.CANCELLED)
        self._running = [s for s in self._running if not s.handle.done]
        if not self._running:
            return
        try:
            next_ids = self._runner.decode(self._running)
        except torch.OutOfMemoryError:
            self._fail_running(OUT_OF_MEMORY_MESSAGE)
            return
        except Exception as error:
            log.exception("decode failed")
            self._fail_running(f"Generation failed: {error}")
            return
        self.metrics.record_decode(len(next_ids))
        for sequence, token in zip(self._running, next_ids):
            self._accept_token(sequence, token)
        self._running = [s for s in self._running if not s.handle.done]

    def _fail_running(self, message: str) -> None:
        for sequence in self._running:
            sequence.finish(FinishReason.ERROR, message)
        self._running = []

    def _accept_token(self, sequence: Sequence, token: int) -> None:
        sequence.append(token)
        if token in self._loaded.eos_token_ids:
            sequence.finish(FinishReason.END_OF_TEXT)
            return
        released, hit_stop = sequence.stop_matcher.feed(sequence.detokenizer.push(token))
        sequence.handle._emit_text(released)
        if hit_stop:
            sequence.finish(FinishReason.STOP_STRING)
        elif len(sequence.generated) >= sequence.max_new_tokens:
            sequence.finish(FinishReason.CONTEXT_FULL if sequence.context_limited else FinishReason.MAX_TOKENS)
        elif sequence.handle.cancel_requested:
            sequence.finish(FinishReason.CANCELLED)
