"""The scheduler thread: owns the model, admits queued requests into the running batch, and steps it.

Continuous batching: at every step, waiting requests are prefilled and join the batch (up to the max batch
size and the prefill budget) and finished or cancelled ones leave it at once, so a new request never waits
for the batch to drain. The knobs in `BatchingSettings` are read at every step. Callers only see handles.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from concurrent.futures import Future
from typing import Any, Callable
import threading
import time
from collections import deque

import torch

from engine.batching_settings import BatchingSettings
from engine.errors import EngineBusy, NoModelLoaded, PromptTooLong
from engine.weights.loader import LoadedModel
from engine.metrics import EngineMetrics, EngineSnapshot
from engine.forward.model_runner import ModelRunner
from engine.request import FinishReason, GenerationResult, RequestHandle
from engine.response_cache import CachedReply, ResponseCache
from engine.sampling import make_generator
from engine.sequence import Sequence, fail_handle
from engine.text_stream import IncrementalDetokenizer, StopStringMatcher
from engine.thread_control import ThreadController

COMPILE_MODES = ("auto", "on", "off")
# The intra-op thread count torch starts with (one per core, or OMP_NUM_THREADS), read before any scheduler
# lowers it: torch.set_num_threads also changes the count that threads started later begin with.
DEFAULT_THREADS = torch.get_num_threads()


def compile_wanted(mode: str, device: torch.device) -> bool:
    """"auto" compiles on a GPU only. On a CPU compiling runs in the background and, holding Python's GIL,
    slows the replies of its 10-40 s about fivefold (measured on two cores), so a CPU compiles when asked ("on")."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)} (got {mode!r})")
    return mode == "on" or (mode == "auto" and device.type == "cuda")


log = logging.getLogger(__name__)

OUT_OF_MEMORY_MESSAGE = (
    "Out of memory while generating, even alone. Try a shorter conversation or a lower precision."
)
ADAPT_EVERY_STEPS = 16


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
    def __init__(self, settings: BatchingSettings | None = None, lean_decoder: bool = True, compile_decode: str = "auto"):
        self.settings = (settings or BatchingSettings()).validate()
        self.lean_decoder = lean_decoder  # False: always transformers' forward (for comparison and diagnosis)
        self.compile_decode = compile_decode  # "auto" (on a GPU), "on" or "off": applies at the next load
        self.metrics = EngineMetrics()
        self.response_cache = ResponseCache(enabled=self.settings.response_cache)
        self.notices: deque[tuple[float, str]] = deque(maxlen=50)  # (time, message) for the user
        self._condition = threading.Condition()
        self._waiting: deque[RequestHandle] = deque()
        self._preempted: deque[Sequence] = deque()  # taken out of the batch after out-of-memory
        self._loaded: LoadedModel | None = None
        self._runner: ModelRunner | None = None
        self._swap: tuple[LoadedModel | None, threading.Event] | None = None
        self._tasks: deque[tuple[Callable[[LoadedModel], Any], Future]] = deque()
        self._stopping = False
        self._step_times: deque[float] = deque(maxlen=128)
        self._steps_since_adapt = 0
        self._thread = threading.Thread(target=self._run, name="llm-console-scheduler", daemon=True)
        self._thread.start()

    # --- caller side -------------------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def configure(self, **changes) -> BatchingSettings:
        """Change knobs live (validated); they apply from the next step."""
        with self._condition:
            self.settings = self.settings.changed(**changes)
            self.response_cache.enabled = self.settings.response_cache
            self._condition.notify_all()
            return self.settings

    def submit(self, handle: RequestHandle) -> None:
        with self._condition:
            if self._stopping:
                raise EngineBusy("The engine is shutting down.")
            if self._loaded is None and (self._swap is None or self._swap[0] is None):
                raise NoModelLoaded("No model is loaded. Load a model first.")
            if len(self._waiting) >= self.settings.queue_limit:
                raise EngineBusy(
                    f"The engine is busy: {len(self._waiting)} requests are already waiting "
                    f"(queue limit {self.settings.queue_limit}). Try again shortly."
                )
            handle._finish_listeners.append(self.metrics.record_result)
            self._waiting.append(handle)
            self._condition.notify_all()

    def run_on_model(self, task: Callable[[LoadedModel], Any]) -> Future:
        """Run `task(loaded_model)` on the scheduler thread between two steps (the model never leaves it)."""
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
            waiting = len(self._waiting) + len(self._preempted)
            running = len(self._runner.running) if self._runner is not None else 0
            return waiting, running

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

    # --- scheduler thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        # Created here: the thread count is per thread, and torch.set_num_threads must run on this one.
        self._threads = ThreadController(DEFAULT_THREADS, time.monotonic)
        self.metrics.intra_op_threads = self._threads.current
        while True:
            with self._condition:
                while not (self._stopping or self._swap or self._tasks or self._waiting or self._preempted
                           or self._has_running()):
                    self._condition.wait()
                if self._stopping:
                    break
                swap, self._swap = self._swap, None
                tasks, self._tasks = list(self._tasks), deque()
                if swap is None and not tasks and not self._has_running():
                    self._wait_for_batch_to_fill()
            if swap is not None:
                self._apply_swap(*swap)
            for task, future in tasks:
                self._run_task(task, future)
            self._drop_cancelled_waiting()
            self._admit()
            self._decode_step()
            self._adapt_batch_size()
        self._end_all("The engine was shut down.")
        if self._swap is not None:
            self._swap[1].set()
        for _task, future in self._tasks:
            future.set_exception(EngineBusy("The engine was shut down."))
        self._release_model()

    def _run_task(self, task: Callable[[LoadedModel], Any], future: Future) -> None:
        if self._loaded is None:
            future.set_exception(NoModelLoaded("No model is loaded. Load a model first."))
            return
        try:
            future.set_result(task(self._loaded))
        except Exception as error:
            future.set_exception(error)

    def _has_running(self) -> bool:
        return self._runner is not None and bool(self._runner.running)

    def _wait_for_batch_to_fill(self) -> None:
        """Idle engine, requests arriving: wait up to max_wait for a fuller first batch (condition held)."""
        deadline = time.monotonic() + self.settings.max_wait_ms / 1000
        while (
            not self._stopping
            and self._swap is None
            and len(self._waiting) < self.settings.max_batch_size
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

    def _end_all(self, message: str) -> None:
        with self._condition:
            waiting, self._waiting = list(self._waiting), deque()
        for handle in waiting:
            fail_handle(handle, FinishReason.ERROR, message)
        running = (self._runner.running if self._runner is not None else []) + list(self._preempted)
        self._preempted.clear()
        for sequence in running:
            sequence.finish(FinishReason.ERROR, message)
        if self._runner is not None:
            self._runner.keep([])

    def _drop_cancelled_waiting(self) -> None:
        with self._condition:
            cancelled = [h for h in self._waiting if h.cancel_requested]
            for handle in cancelled:
                self._waiting.remove(handle)
        for handle in cancelled:
            fail_handle(handle, FinishReason.CANCELLED)
        for sequence in [s for s in self._preempted if s.handle.cancel_requested]:
            self._preempted.remove(sequence)
            sequence.finish(FinishReason.CANCELLED)

    def _next_to_admit(self) -> Sequence | RequestHandle | None:
        if self._preempted:
            return self._preempted.popleft()
        with self._condition:
            return self._waiting.popleft() if self._waiting else None

    def _admit(self) -> None:
        """Prefill waiting requests together, within the batch size and the prefill budget, and add them."""
        if self._runner is None:
            self._end_all("No model is loaded. Load a model first.")
            return
        group, group_tokens = self._next_group()
        if not group:
            return
        try:
            first_tokens = self._runner.prefill(group)
        except torch.OutOfMemoryError:
            self._back_off_after_oom(group)
            return
        except Exception as error:  # a failing request must not take the engine down
            log.exception("prefill failed")
            for sequence in group:
                sequence.finish(FinishReason.ERROR, f"Generation failed: {error}")
            self._runner.keep([s for s in self._runner.running if not s.handle.done])
            return
        self.metrics.record_prefill(group_tokens)
        self.metrics.record_decode(len(group))
        for sequence, token in zip(group, first_tokens):
            self._accept_token(sequence, token)
        self._runner.keep([s for s in self._runner.running if not s.handle.done])

    def _next_group(self) -> tuple[list[Sequence], int]:
        budget = self.settings.max_prefill_tokens
        group: list[Sequence] = []
        group_tokens = 0
        while len(self._runner.running) + len(group) < self.settings.max_batch_size:
            item = self._next_to_admit()
            if item is None:
                break
            if isinstance(item, Sequence):
                sequence = item
            else:
                try:
                    sequence = self._prepare(item)
                except PromptTooLong as error:
                    fail_handle(item, FinishReason.ERROR, str(error))
                    continue
                except Exception as error:
                    log.exception("preparing a request failed")
                    fail_handle(item, FinishReason.ERROR, f"Could not read the request: {error}")
                    continue
                if self._answer_from_cache(sequence):
                    continue
            tokens = len(sequence.prompt_ids) + len(sequence.generated)
            if group and group_tokens + tokens > budget:
                self._preempted.appendleft(sequence)  # next step; one long prompt may still run alone
                break
            group.append(sequence)
            group_tokens += tokens
        return group, group_tokens

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
        handle._emit_text(reply.text)
        elapsed = time.perf_counter() - handle.request.submitted_at
        handle._finish(
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

    def _decode_step(self) -> None:
        runner = self._runner
        if runner is None:
            return
        for sequence in runner.running:
            if sequence.handle.cancel_requested:
                sequence.finish(FinishReason.CANCELLED)
        runner.keep([s for s in runner.running if not s.handle.done])
        if not runner.running:
            return
        started = time.perf_counter()
        try:
            next_ids = runner.decode()
        except torch.OutOfMemoryError:
            self._back_off_after_oom(None)
            return
        except Exception as error:
            log.exception("decode failed")
            for sequence in runner.running:
                sequence.finish(FinishReason.ERROR, f"Generation failed: {error}")
            runner.keep([])
            return
        self._step_times.append(time.perf_counter() - started)
        self._tune_threads(self._step_times[-1], len(next_ids))
        self.metrics.record_decode(len(next_ids))
        for sequence, token in zip(runner.running, next_ids):
            self._accept_token(sequence, token)
        runner.keep([s for s in runner.running if not s.handle.done])

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

    def _back_off_after_oom(self, failed_prefill: list[Sequence] | None) -> None:
        """Halve the batch size and re-queue what was running (their text so far is kept).

        A request that runs out of memory alone cannot be helped: it ends with a clear message."""
        runner = self._runner
        running = list(runner.running)
        victims = running + (failed_prefill or [])
        # A failed forward may have grown some layers' caches and not others: drop the batch cache entirely;
        # it is rebuilt by prefilling each prompt with the tokens generated so far.
        runner.evict(running)
        self._empty_device_cache()
        if len(victims) <= 1:
            for sequence in victims:
                sequence.finish(FinishReason.ERROR, OUT_OF_MEMORY_MESSAGE)
            return
        self._preempted.extendleft(reversed(victims))
        new_size = max(1, len(victims) // 2)
        self.settings = self.settings.changed(max_batch_size=new_size)
        self.metrics.oom_backoffs += 1
        self.notices.append(
            (time.time(), f"Out of memory with {len(victims)} requests in the batch: max batch size lowered to "
                          f"{new_size}; the requests were re-queued, none lost.")
        )

    def _empty_device_cache(self) -> None:
        if self._loaded is not None and self._loaded.device.type == "cuda":
            torch.cuda.empty_cache()

    def _adapt_batch_size(self) -> None:
        settings = self.settings
        if not settings.adaptive or len(self._step_times) < ADAPT_EVERY_STEPS:
            return
        self._steps_since_adapt += 1
        if self._steps_since_adapt < ADAPT_EVERY_STEPS:
            return
        self._steps_since_adapt = 0
        times = sorted(self._step_times)
        p99_ms = times[min(len(times) - 1, int(0.99 * len(times)))] * 1000
        size = settings.max_batch_size
        if p99_ms > settings.target_p99_ms and size > 1:
            size -= 1
        elif p99_ms < 0.7 * settings.target_p99_ms and self._waiting and size < settings.adaptive_max_batch_size:
            size += 1
        if size != settings.max_batch_size:
            self.settings = settings.changed(max_batch_size=size)
            self._step_times.clear()

    def _accept_token(self, sequence: Sequence, token: int) -> None:
        sequence.append(token)
        if token in self._loaded.eos_token_ids and not sequence.params.ignore_eos:
            self._finish(sequence, FinishReason.END_OF_TEXT)
            return
        released, hit_stop = sequence.stop_matcher.feed(sequence.detokenizer.push(token))
        sequence.handle._emit_text(released)
        if hit_stop:
            self._finish(sequence, FinishReason.STOP_STRING)
        elif len(sequence.generated) >= sequence.max_new_tokens:
            self._finish(sequence, FinishReason.CONTEXT_FULL if sequence.context_limited else FinishReason.MAX_TOKENS)
        elif sequence.handle.cancel_requested:
            self._finish(sequence, FinishReason.CANCELLED)

    def _finish(self, sequence: Sequence, reason: FinishReason) -> None:
        result = sequence.finish(reason)
        self.response_cache.put(sequence.cache_key, CachedReply(result.text, reason, result.completion_tokens))

    def step_time_p99_ms(self) -> float | None:
        times = sorted(self._step_times)
        return times[min(len(times) - 1, int(0.99 * len(times)))] * 1000 if times else None
