"""The engine's public face: load and unload a model, submit requests, tune batching live, shut down."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from engine.batching_settings import BatchingSettings
from engine.compile_settings import COMPILE_MODES
from engine.errors import EngineBusy, InvalidRequest
from engine.forward.lean_decoder import wait_for_background_compiles
from engine.weights import gguf_cache
from engine.weights.loader import LoadedModelInfo, ModelSpec, ProgressCallback, load_model
from engine.metrics import EngineSnapshot
from engine.loop import EngineLoop
from engine.request import GenerationRequest, GenerationResult, RequestHandle, StreamEvent


class InferenceEngine:
    def __init__(self, cache_dir: Path, settings: BatchingSettings | None = None, lean_decoder: bool = True,
                 compile_decode: str = "auto"):
        """`lean_decoder=False` runs every model on transformers' own forward pass (to compare the two);
        `compile_decode` is "auto", "on" or "off" (see `compile_decode`)."""
        self.cache_dir = Path(cache_dir)
        gguf_cache.clean_stale_conversions(self.cache_dir / "gguf")  # what killed conversions left behind
        self._loop = EngineLoop(settings, lean_decoder, compile_decode)
        self._load_lock = threading.Lock()

    @property
    def model_info(self) -> LoadedModelInfo | None:
        loaded = self._loop.loaded
        return loaded.info if loaded is not None else None

    @property
    def loading(self) -> bool:
        return self._load_lock.locked()

    @property
    def lean_decoder(self) -> bool:
        """Run Llama-family models on the lean decoder (engine/lean_decoder.py); a change applies at the next load."""
        return self._loop.lean_decoder

    @lean_decoder.setter
    def lean_decoder(self, value: bool) -> None:
        self._loop.lean_decoder = bool(value)

    @property
    def compile_decode(self) -> str:
        """torch.compile for the lean decode step, from the next load: "on", "off" or "auto" (on a GPU only).
        A GPU compiles while loading; a CPU compiles in the background."""
        return self._loop.compile_decode

    @compile_decode.setter
    def compile_decode(self, mode: str) -> None:
        if mode not in COMPILE_MODES:
            raise InvalidRequest(f"Compile mode must be one of {', '.join(COMPILE_MODES)} (got {mode!r}).")
        self._loop.compile_decode = mode

    @property
    def settings(self) -> BatchingSettings:
        return self._loop.settings

    def load(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> LoadedModelInfo:
        """Load a model and make it the one that serves requests. Blocking; run it off the UI thread."""
        if not self._load_lock.acquire(blocking=False):
            raise EngineBusy("A model is already loading. Wait for it to finish.")
        try:
            loaded = _in_short_lived_thread(lambda: load_model(spec, self.cache_dir, progress or (lambda _f, _m: None)))
            self._loop.swap_model(loaded)
            return loaded.info
        finally:
            self._load_lock.release()

    def load_random(self, shape: str, tokenizer, device: str = "auto", precision: str = "auto") -> LoadedModelInfo:
        """Serve a random-weight model of a named shape (engine/random_models.py): for GPU benchmarks."""
        from engine.weights.random_models import build_random_model

        if not self._load_lock.acquire(blocking=False):
            raise EngineBusy("A model is already loading. Wait for it to finish.")
        try:
            loaded = _in_short_lived_thread(lambda: build_random_model(shape, tokenizer, device, precision))
            self._loop.swap_model(loaded)
            return loaded.info
        finally:
            self._load_lock.release()

    def run_on_model(self, task, timeout: float | None = None):
        """Run `task(loaded_model)` on the engine's loop thread between steps and return its result.

        For benchmarks and diagnostics that need the model itself (baselines, perplexity)."""
        return self._loop.run_on_model(task).result(timeout)

    def unload(self) -> None:
        self._loop.swap_model(None)

    def submit(self, request: GenerationRequest, on_event: Callable[[StreamEvent], None] | None = None) -> RequestHandle:
        """Queue a request; returns at once with a handle that streams its text."""
        request.validate()
        handle = RequestHandle(request, on_event)
        self._loop.submit(handle)
        return handle

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> GenerationResult:
        return self.submit(request).result(timeout)

    def configure(self, **changes) -> BatchingSettings:
        """Change batching knobs live (max_batch_size, max_wait_ms, max_prefill_tokens, queue_limit, adaptive,
        target_p99_ms, response_cache); raises InvalidRequest naming any bad value."""
        return self._loop.configure(**changes)

    def perplexity(self, text: str, timeout: float | None = None) -> float:
        """Perplexity of the loaded model on `text`, computed on the loop thread between steps."""
        from engine.weights.perplexity import perplexity

        return self.run_on_model(lambda loaded: perplexity(loaded, text), timeout)

    def snapshot(self) -> EngineSnapshot:
        """Current engine figures (throughput, latency percentiles, queue and batch state); any thread."""
        return self._loop.snapshot()

    def notices(self) -> list[tuple[float, str]]:
        """Recent events the user should know of (out-of-memory back-offs), oldest first."""
        return list(self._loop.notices)

    def queue_counts(self) -> tuple[int, int]:
        return self._loop.counts()

    def shutdown(self, timeout: float = 10.0, compile_timeout: float = 120.0) -> None:
        """Stop the loop thread, then wait for a background compile still running (about 20 s at most
        on a CPU): leaving the process in the middle of one would abort it."""
        self._loop.stop(timeout)
        wait_for_background_compiles(compile_timeout)


def _in_short_lived_thread(work):
    """Run `work` in a thread that ends afterwards, and return its result (or raise its error).

    Measured here: once a long-lived thread (the CLI's main thread, say) has run PyTorch's OpenMP-parallel
    ops, the loop thread's own parallel ops run about twice as slowly (two OpenMP pools competing for
    the cores). A thread's pool goes away with the thread, so the heavy work of loading happens in one.
    """
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="llm-console-load", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
