"""The one object that touches both worlds: runs loads in a worker thread and turns engine callbacks into signals.

It lives on the UI thread; engine callbacks arrive on the scheduler or loader thread and are emitted as
signals, which Qt queues to the UI thread.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from console.core import ConsoleCore
from engine import EngineError, GenerationResult, LoadedModelInfo, ModelSpec, RequestHandle, SamplingParams, StreamEvent


class EngineAdapter(QObject):
    load_started = Signal(str)  # model name
    load_progress = Signal(float, str)  # fraction (-1 when unknown), message
    load_finished = Signal(object)  # LoadedModelInfo
    load_failed = Signal(str)
    unloaded = Signal()
    text_received = Signal(int, str)  # request id, text piece
    generation_finished = Signal(int, object)  # request id, GenerationResult
    perplexity_measured = Signal(object, float)  # LoadedModelInfo, perplexity
    perplexity_failed = Signal(str)

    def __init__(self, core: ConsoleCore, parent: QObject | None = None):
        super().__init__(parent)
        self.core = core
        self._handles: dict[int, RequestHandle] = {}
        self._loader: threading.Thread | None = None
        self.generation_finished.connect(self._forget)

    @property
    def model_info(self) -> LoadedModelInfo | None:
        return self.core.model_info

    @property
    def loading(self) -> bool:
        return self._loader is not None and self._loader.is_alive()

    def load(self, spec: ModelSpec) -> None:
        if self.loading:
            self.load_failed.emit("A model is already loading. Wait for it to finish.")
            return
        self.load_started.emit(spec.name or spec.path)
        self._loader = threading.Thread(target=self._load_in_worker, args=(spec,), name="llm-console-loader", daemon=True)
        self._loader.start()

    def _load_in_worker(self, spec: ModelSpec) -> None:
        def report(fraction: float | None, message: str) -> None:
            self.load_progress.emit(-1.0 if fraction is None else fraction, message)

        try:
            info = self.core.load_model(spec, report)
        except EngineError as error:
            self.load_failed.emit(str(error))
        except Exception as error:  # never let a worker die silently
            self.load_failed.emit(f"Loading failed: {error}")
        else:
            self.load_finished.emit(info)

    def measure_perplexity(self) -> None:
        """Measure the loaded model's perplexity on the shipped text, in a worker thread."""
        info = self.core.model_info

        def work() -> None:
            try:
                value = self.core.measure_perplexity()
            except EngineError as error:
                self.perplexity_failed.emit(str(error))
            except Exception as error:
                self.perplexity_failed.emit(f"Perplexity failed: {error}")
            else:
                self.perplexity_measured.emit(info, value)

        threading.Thread(target=work, name="llm-console-perplexity", daemon=True).start()

    def unload(self) -> None:
        self.cancel_all()
        self.core.unload_model()
        self.unloaded.emit()

    def chat(self, messages: list[dict[str, str]], params: SamplingParams) -> int:
        """Submit a chat request; raises EngineError (shown by the caller) when it cannot be queued."""
        handle = self.core.chat(messages, params, on_event=self._on_event)
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

    def _on_event(self, event: StreamEvent) -> None:  # scheduler thread
        if event.result is not None:
            self.generation_finished.emit(event.request_id, event.result)
        else:
            self.text_received.emit(event.request_id, event.text)

    def _forget(self, request_id: int, _result: GenerationResult) -> None:
        self._handles.pop(request_id, None)
