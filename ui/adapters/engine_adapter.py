"""The one object that touches both worlds: runs loads in a worker thread and turns engine callbacks into signals.

It holds the window's `DesktopSession`: every core call it makes carries that principal. It lives on the UI thread;
engine callbacks arrive on the engine loop or loader thread and are relayed
(`ThreadRelay`) so that every public signal is emitted on the UI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ui.adapters.thread_relay import ThreadRelay
from ui.adapters.worker import Worker

from console.core import ConsoleCore
from ui.access.desktop_session import DesktopSession
from console.errors import ConsoleError, MemoryWontFit
from console.registry.verified_loading import VersionLoadSpec
from engine import EngineError, GenerationResult, LoadedModelInfo, ModelSpec, RequestHandle, SamplingParams, StreamEvent


class EngineAdapter(ThreadRelay):
    load_started = Signal(str)  # model name
    load_progress = Signal(float, str)  # fraction (-1 when unknown), message
    load_finished = Signal(object)  # LoadedModelInfo
    load_failed = Signal(str)
    unloaded = Signal()
    text_received = Signal(int, str)  # request id, text piece
    generation_finished = Signal(int, object)  # request id, GenerationResult
    perplexity_measured = Signal(object, float)  # LoadedModelInfo, perplexity
    perplexity_failed = Signal(str)
    load_refused_for_memory = Signal(object, str)  # the spec, the message with the estimate: "load anyway?"
    estimate_ready = Signal(object, object)  # the spec, its MemoryEstimate (None when it cannot be estimated)

    def __init__(self, core: ConsoleCore, session: DesktopSession, parent: QObject | None = None):
        super().__init__(parent)
        self.core = core
        self.session = session
        self._handles: dict[int, RequestHandle] = {}
        self._loader: Worker | None = None
        self._perplexity: Worker | None = None
        self._estimators: set[Worker] = set()
        self.generation_finished.connect(self._forget)

    @property
    def model_info(self) -> LoadedModelInfo | None:
        return self.core.model_info

    @property
    def loading(self) -> bool:
        return self._loader is not None and self._loader.running

    def load(self, spec: ModelSpec | VersionLoadSpec, load_anyway: bool = False) -> None:
        """Load a path (ModelSpec) or a registered version (VersionLoadSpec: verified first) in a worker.
        A load the memory estimate says will not fit ends with `load_refused_for_memory` unless `load_anyway`."""
        if self.loading:
            self.emit_from_worker("load_failed", "A model is already loading. Wait for it to finish.")
            return
        self.load_started.emit(spec.name or str(getattr(spec, "path", None) or spec.ref))
        principal = self.session.principal

        def work(worker: Worker) -> LoadedModelInfo | MemoryWontFit:
            try:
                return self.core.load(principal, spec, lambda fraction, message: worker.report(
                    -1.0 if fraction is None else fraction, message), load_anyway=load_anyway)
            except MemoryWontFit as error:  # not a failure: the window offers "load anyway"
                return error

        def returned(outcome: LoadedModelInfo | MemoryWontFit) -> None:
            # On the UI thread, after the worker counts as done: a "load anyway" clicked at once is not
            # refused as "already loading" (the refusal used to arrive before the worker's end).
            if isinstance(outcome, MemoryWontFit):
                self.load_refused_for_memory.emit(spec, str(outcome))
            else:
                self.load_finished.emit(outcome)

        self._loader = Worker(work, "llm-console-loader", "Loading")  # held here until the next load
        self._loader.progressed.connect(lambda progress: self.load_progress.emit(*progress))
        self._loader.returned.connect(returned)
        self._loader.failed.connect(self.load_failed)
        self._loader.start()

    def estimate(self, spec: ModelSpec | VersionLoadSpec) -> None:
        """The memory estimate of a load, from the model's headers, in a worker (a first read takes a moment)."""

        def work(_worker: Worker):
            try:
                return self.core.estimate_load(spec)
            except (EngineError, ConsoleError, OSError):
                return None  # a missing or damaged model: Load says why

        worker = Worker(work, "llm-console-estimate", "Estimating memory")
        self._estimators.add(worker)  # held until its outcome has arrived (a selection change starts another)
        worker.returned.connect(lambda estimate: self.estimate_ready.emit(spec, estimate))
        worker.failed.connect(lambda _message: self.estimate_ready.emit(spec, None))
        for outcome in (worker.returned, worker.failed):
            outcome.connect(lambda _value, worker=worker: self._estimators.discard(worker))
        worker.start()

    def measure_perplexity(self) -> None:
        """Measure the loaded model's perplexity on the shipped text, in a worker thread."""
        info = self.core.model_info
        principal = self.session.principal
        self._perplexity = Worker(lambda _worker: self.core.measure_perplexity(principal), "llm-console-perplexity",
                                  "Perplexity")
        self._perplexity.returned.connect(lambda value: self.perplexity_measured.emit(info, value))
        self._perplexity.failed.connect(self.perplexity_failed)
        self._perplexity.start()

    def unload(self) -> None:
        self.cancel_all()
        self.core.unload_model(self.session.principal)
        self.unloaded.emit()

    def chat(self, messages: list[dict[str, str]], params: SamplingParams) -> int:
        """Submit a chat request; raises EngineError (shown by the caller) when it cannot be queued."""
        handle = self.core.chat(self.session.principal, messages, params, on_event=self._on_event)
        self._handles[handle.request_id] = handle
        return handle.request_id

    def cancel(self, request_id: int) -> None:
        handle = self._handles.get(request_id)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in list(self._handles.values()):
            handle.cancel()

    def shutdown(self) -> None:
        self.cancel_all()
        self.core.shutdown()

    def _on_event(self, event: StreamEvent) -> None:  # engine loop thread
        if event.result is not None:
            self.emit_from_worker("generation_finished", event.request_id, event.result)
        else:
            self.emit_from_worker("text_received", event.request_id, event.text)

    def _forget(self, request_id: int, _result: GenerationResult) -> None:
        self._handles.pop(request_id, None)
