"""The engine's loop thread: owns the model, runs tasks and model swaps between steps, and steps the batch.

A step is schedule → run → postprocess, as nano-vllm's `LLMEngine.step()`: the scheduler (engine/scheduler.py,
pure policy) picks who runs, the model runner (engine/forward/model_runner.py) runs the forward pass, and
each request's new token becomes text and is checked against its stop conditions. A request whose sampling,
text decoding or stream callback raises ends alone, with a message; its batch neighbours carry on.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable

import torch

from engine.batching_settings import BatchingSettings
from engine.compile_settings import compile_wanted
from engine.errors import EngineBusy, NoModelLoaded, PromptTooLong
from engine.forward.model_runner import ModelRunner, RowFailed
from engine.heap import release_free_heap
from engine.metrics import EngineMetrics, EngineSnapshot
from engine.prompts import prompt_ids_within_context
from engine.request import FinishReason, GenerationResult, RequestHandle
from engine.response_cache import CachedReply, ResponseCache
from engine.sampling import make_generator
from engine.scheduler import Scheduler
from engine.sequence import Sequence, fail_handle
from engine.text_stream import IncrementalDetokenizer, StopStringMatcher
from engine.thread_control import ThreadController
from engine.weights.loader import LoadedModel

log = logging.getLogger(__name__)

OUT_OF_MEMORY_MESSAGE = (
    "Out of memory while generating, even alone. Try a shorter conversation or a lower precision."
)
NO_MODEL_MESSAGE = "No model is loaded. Load a model first."
# The intra-op thread count torch starts with (one per core, or OMP_NUM_THREADS), read before any loop lowers
# it: torch.set_num_threads also changes the count that threads started later begin with.
DEFAULT_THREADS = torch.get_num_threads()


class EngineLoop:
    def __init__(self, settings: BatchingSettings | None = None, lean_decoder: bool = True, compile_decode: str = "auto"):
        self.scheduler = Scheduler(settings)
        self.lean_decoder = lean_decoder  # False: always transformers' forward (for comparison and diagnosis)
        self.compile_decode = compile_decode  # "auto" (on a GPU), "on" or "off": applies at the next load
        self.metrics = EngineMetrics()
        self.response_cache = ResponseCache(enabled=self.scheduler.settings.response_cache)
        self.notices: deque[tuple[float, str]] = deque(maxlen=50)  # (time, message) for the user
        self._condition = threading.Condition()
        self._arrivals: deque[RequestHandle] = deque()  # submitted, not handed to the scheduler yet
        self._loaded: LoadedModel | None = None
        self._runner: ModelRunner | None = None
        self._swap: tuple[LoadedModel | None, threading.Event] | None = None
        self._tasks: deque[tuple[Callable[[LoadedModel], Any], Future]] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llm-console-scheduler", daemon=True)
        self._thread.start()

    # --- caller side (any thread) ------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    @property
    def settings(self) -> BatchingSettings:
        return self.scheduler.settings

    def configure(self, **changes) -> BatchingSettings:
        """Change knobs live (validated); they apply from the next step."""
        with self._condition:
            self.scheduler.settings = self.scheduler.settings.changed(**changes)
            self.response_cache.enabled = self.scheduler.settings.response_cache
            self._condition.notify_all()
            return self.scheduler.settings

    def submit(self, handle: RequestHandle) -> None:
        with self._condition:
            if self._stopping:
                raise EngineBusy("The engine is shutting down.")
            if self._loaded is None and (self._swap is None or self._swap[0] is None):
                raise NoModelLoaded(NO_MODEL_MESSAGE)
            waiting = len(self._arrivals) + len(self.scheduler.waiting)
            if waiting >= self.settings.queue_limit:
                raise EngineBusy(
                    f"The engine is busy: {waiting} requests are already waiting "
                    f"(queue limit {self.settings.queue_limit}). Try again shortly."
                )
            handle.add_finish_listener(self.metrics.record_result)
            self._arrivals.append(handle)
            self._condition.notify_all()

    def run_on_model(self, task: Callable[[LoadedModel], Any]) -> Future:
        """Run `task(loaded_model)` on the loop thread between two steps (the model never leaves it)."""
        future: Future = Future()
        with self._condition:
            if self._stopping:
                raise EngineBusy("The engine is shutting down.")
            self._tasks.append((task, future))
            self._condition.notify_all()
        return future

    def swap_model(self, loaded: LoadedModel | None, timeout: float | None = None) -> None:
        """Replace (or with None, drop) the model between two steps; requests in flight end with an error."""
        applied = threading.Event()
        with self._condition:
            if self._stopping:
                return
            self._swap = (loaded, applied)
            self._condition.notify_all()
        applied.wait(timeout)

    def counts(self) -> tuple[int, int]:
        """(waiting, running)"""
        with self._condition:
            return len(self._arrivals) + self.scheduler.waiting_count, len(self.scheduler.running)

    def snapshot(self) -> EngineSnapshot:
        waiting, running = self.counts()
        runner = self._runner
        self.metrics.kv_cache_tokens = runner.kv_tokens() if runner is not None else 0
        snapshot = self.metrics.snapshot(waiting, running, self.settings.max_batch_size)
        return dataclasses.replace(snapshot, decoder=runner.decoder if runner is not None else "")

    def stop(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join(timeout)

    # --- the loop thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        # Created here: the thread count is per thread, and torch.set_num_threads must run on this one.
        self._threads = ThreadController(DEFAULT_THREADS, time.monotonic)
        self.metrics.intra_op_threads = self._threads.current
        while True:
            with self._condition:
                while not (self._stopping or self._swap or self._tasks or self._arrivals or self.scheduler.has_work()):
                    self._condition.wait()
                if self._stopping:
                    break
                swap, self._swap = self._swap, None
                tasks, self._tasks = list(self._tasks), deque()
                if swap is None and not tasks and not self.scheduler.running:
                    self._wait_for_batch_to_fill()
                while self._arrivals:
                    self.scheduler.add(self._arrivals.popleft())
            if swap is not None:
                self._apply_swap(*swap)
            for task, future in tasks:
                self._run_task(task, future)
            self._step()
        self._end_all("The engine was shut down.")
        if self._swap is not None:
            self._swap[1].set()
        for _task, future in self._tasks:
            future.set_exception(EngineBusy("The engine was shut down."))
        self._release_model()

    def _step(self) -> None:
        """Schedule → run → postprocess: prefill the newly admitted group, then decode the whole batch."""
        if self._runner is None:
            self._end_all(NO_MODEL_MESSAGE)
            return
        self._end_cancelled()
        group = self.scheduler.schedule(self._prepare)
        if group:
            self._prefill(group)
        if self._runner.running:
            self._decode()
        self.scheduler.adapt_batch_size()

    def _prefill(self, group: list[Sequence]) -> None:
        prompt_tokens = sum(s.token_count for s in group)
        next_ids = self._forward(group, lambda: self._runner.prefill(group))
        if next_ids is None:
            return
        self.metrics.record_prefill(prompt_tokens)
        self.metrics.record_decode(len(group))
        self._postprocess(group, next_ids)

    def _decode(self) -> None:
        batch = list(self._runner.running)  # the order of the batch's rows, which is that of the next ids
        started = time.perf_counter()
        next_ids = self._forward(batch, self._runner.decode)
        if next_ids is None:
            return
        # The decode step's wall time, forward pass and sampling: what adaptive batch sizing steers by.
        step_s = time.perf_counter() - started
        self.scheduler.record_step_time(step_s)
        self._tune_threads(step_s, len(next_ids))
        self.metrics.record_decode(len(next_ids))
        self._postprocess(batch, next_ids)

    def _tune_threads(self, step_s: float, rows: int) -> None:
        """Hand the step to the thread controller and run the next step with the count it asks for (on a CPU:
        a GPU's step does not wait on the CPU's thread team)."""
        if self._loaded is None or self._loaded.device.type != "cpu":
            return
        self._threads.follow(self.settings.threads)
        threads = self._threads.record(step_s, rows)
        if threads != torch.get_num_threads():  # this thread's count: the one its parallel regions use
            torch.set_num_threads(threads)
        self.metrics.intra_op_threads = threads
        while self._threads.changes:
            log.info("intra-op threads: %s", self._threads.changes.pop(0))

    def _forward(self, sequences: list[Sequence], forward: Callable[[], list]) -> list | None:
        """The next ids of `sequences`, or None when the forward pass failed (they were dealt with)."""
        try:
            return forward()
        except torch.OutOfMemoryError:
            self._back_off_after_oom()
        except Exception as error:  # a failing forward pass must not take the engine down
            log.exception("forward pass failed")
            for sequence in sequences:
                sequence.finish(FinishReason.ERROR, f"Generation failed: {error}")
            self._sync_batch()
        return None

    def _postprocess(self, sequences: list[Sequence], next_ids: list[int | RowFailed]) -> None:
        """Each sequence takes its token on its own: one that fails ends alone, the others go on."""
        for sequence, token in zip(sequences, next_ids):
            if isinstance(token, RowFailed):
                self._end_alone(sequence, token.error)
                continue
            try:
                self._take_token(sequence, token)
            except Exception as error:
                log.exception("request %d failed after its forward pass", sequence.handle.request_id)
                self._end_alone(sequence, error)
                continue
            if sequence.handle.callback_error is not None and not sequence.done:
                error = sequence.handle.callback_error
                self._end_alone(sequence, f"its stream callback raised {type(error).__name__}: {error}")
        self._sync_batch()

    def _take_token(self, sequence: Sequence, token: int) -> None:
        sequence.append(token)
        end_of_text = self.scheduler.is_end_of_text(sequence, token, self._loaded.eos_token_ids)
        hit_stop = False
        if not end_of_text:
            released, hit_stop = sequence.read_text(token)
            sequence.handle.emit_text(released)
        reason = self.scheduler.finish_reason(sequence, end_of_text, hit_stop)
        if reason is not None:
            result = sequence.finish(reason)
            self.response_cache.put(sequence.cache_key, CachedReply(result.text, reason, result.completion_tokens))

    def _end_alone(self, sequence: Sequence, error: Exception | str) -> None:
        message = f"Generation failed for this request: {error}"
        try:
            sequence.finish(FinishReason.ERROR, message)
        except Exception:  # not even its text so far could be released: end it without
            log.exception("request %d could not release its text", sequence.handle.request_id)
            fail_handle(sequence.handle, FinishReason.ERROR, message)

    def _sync_batch(self) -> None:
        """Finished sequences leave the scheduler's running list and the runner's batch."""
        self.scheduler.remove_finished()
        self._runner.keep(self.scheduler.running)

    def _back_off_after_oom(self) -> None:
        """Halve the batch size and re-queue what was running (their text so far is kept)."""
        # A failed forward may have grown some layers' caches and not others: drop the batch cache entirely;
        # it is rebuilt by prefilling each prompt with the tokens generated so far.
        self._runner.evict(list(self._runner.running))
        self._empty_device_cache()
        back_off = self.scheduler.back_off_after_oom()
        for sequence in back_off.failed:
            sequence.finish(FinishReason.ERROR, OUT_OF_MEMORY_MESSAGE)
        if back_off.requeued:
            self.metrics.oom_backoffs += 1
            self._notice(f"Out of memory with {back_off.requeued} requests in the batch: max batch size lowered "
                         f"to {back_off.new_batch_size}; the requests were re-queued, none lost.")

    def _end_cancelled(self) -> None:
        handles, sequences = self.scheduler.take_cancelled()
        for handle in handles:
            fail_handle(handle, FinishReason.CANCELLED)
        for sequence in sequences:
            sequence.finish(FinishReason.CANCELLED)
        if sequences:
            self._runner.keep(self.scheduler.running)

    def _prepare(self, handle: RequestHandle) -> Sequence | None:
        """A waiting request as a sequence ready to prefill; None when it was refused or answered from the cache."""
        try:
            sequence = self._new_sequence(handle)
        except PromptTooLong as error:
            fail_handle(handle, FinishReason.ERROR, str(error))
            return None
        except Exception as error:
            log.exception("preparing a request failed")
            fail_handle(handle, FinishReason.ERROR, f"Could not read the request: {error}")
            return None
        return None if self._answer_from_cache(sequence) else sequence

    def _new_sequence(self, handle: RequestHandle) -> Sequence:
        loaded = self._loaded
        prompt_ids = prompt_ids_within_context(loaded, handle.request)
        params = handle.request.params
        room = loaded.info.context_length - len(prompt_ids)
        info = loaded.info
        return Sequence(
            handle=handle,
            prompt_ids=prompt_ids,
            max_new_tokens=min(params.max_new_tokens, room),
            context_limited=params.max_new_tokens > room,
            generator=make_generator(params.seed, loaded.device),
            detokenizer=IncrementalDetokenizer(loaded.tokenizer, prompt_ids),
            stop_matcher=StopStringMatcher(params.stop),
            cache_key=ResponseCache.key((info.path, info.precision, info.device), prompt_ids, params),
        )

    def _answer_from_cache(self, sequence: Sequence) -> bool:
        reply = self.response_cache.get(sequence.cache_key)
        if reply is None:
            return False
        handle = sequence.handle
        handle.emit_text(reply.text)
        elapsed = time.perf_counter() - handle.request.submitted_at
        handle.finish(
            GenerationResult(
                request_id=handle.request_id,
                text=reply.text,
                finish_reason=reply.finish_reason,
                prompt_tokens=len(sequence.prompt_ids),
                completion_tokens=reply.completion_tokens,
                time_to_first_token_s=elapsed,
                total_s=elapsed,
                cached=True,
            )
        )
        return True

    # --- between steps: tasks, model swaps, shutdown ----------------------------------------------------
    def _run_task(self, task: Callable[[LoadedModel], Any], future: Future) -> None:
        if self._loaded is None:
            future.set_exception(NoModelLoaded(NO_MODEL_MESSAGE))
            return
        try:
            future.set_result(task(self._loaded))
        except Exception as error:
            future.set_exception(error)

    def _wait_for_batch_to_fill(self) -> None:
        """Idle engine, requests arriving: wait up to max_wait for a fuller first batch (condition held)."""
        deadline = time.monotonic() + self.settings.max_wait_ms / 1000
        while (
            not self._stopping
            and self._swap is None
            and len(self._arrivals) + len(self.scheduler.waiting) < self.settings.max_batch_size
            and (remaining := deadline - time.monotonic()) > 0
        ):
            self._condition.wait(remaining)

    def _apply_swap(self, loaded: LoadedModel | None, applied: threading.Event) -> None:
        self._end_all("The model was unloaded while this request ran.")
        self._release_model()
        self._loaded = loaded
        self._runner = ModelRunner(
            loaded, lean=self.lean_decoder, compile=compile_wanted(self.compile_decode, loaded.device),
            warm_up_rows=self.settings.max_batch_size, notify=self._notice) if loaded is not None else None
        self.response_cache.clear()
        gc.collect()
        release_free_heap()  # what the load and the old model freed (engine/heap.py)
        applied.set()

    def _notice(self, message: str) -> None:
        """A message for the user (the Engine tab's notices); callable from any thread."""
        self.notices.append((time.time(), message))

    def _release_model(self) -> None:
        if self._runner is not None:
            self._runner.retired = True  # a compile still running for it reports nothing
        device = self._loaded.device if self._loaded is not None else None
        self._loaded = self._runner = None
        gc.collect()
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()

    def _empty_device_cache(self) -> None:
        if self._loaded is not None and self._loaded.device.type == "cuda":
            torch.cuda.empty_cache()

    def _end_all(self, message: str) -> None:
        with self._condition:
            arrivals, self._arrivals = list(self._arrivals), deque()
        handles, sequences = self.scheduler.take_all()
        for handle in handles + arrivals:
            fail_handle(handle, FinishReason.ERROR, message)
        for sequence in sequences:
            sequence.finish(FinishReason.ERROR, message)
        if self._runner is not None:
            self._runner.keep([])
