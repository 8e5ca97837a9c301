"""ConsoleCore wires the engine to the app's data directory and defaults; the GUI and the CLI both use it."""

from __future__ import annotations

from pathlib import Path

from console import paths
from console.default_model import DEFAULT_MODEL_NAME, default_model_path
from engine import (
    GenerationRequest,
    InferenceEngine,
    LoadedModelInfo,
    ModelSpec,
    RequestHandle,
    SamplingParams,
)
from engine.loader import ProgressCallback


class ConsoleCore:
    def __init__(self, data_dir: Path | None = None):
        self.data_dir = Path(data_dir) if data_dir else paths.data_dir()
        cache = self.data_dir / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        self.engine = InferenceEngine(cache_dir=cache)

    def default_model_spec(self, precision: str = "auto", device: str = "auto") -> ModelSpec:
        return ModelSpec(str(default_model_path()), precision=precision, device=device, name=DEFAULT_MODEL_NAME)

    def load_model(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> LoadedModelInfo:
        """Blocking: the GUI calls it from a worker thread."""
        return self.engine.load(spec, progress)

    def unload_model(self) -> None:
        self.engine.unload()

    @property
    def model_info(self) -> LoadedModelInfo | None:
        return self.engine.model_info

    def chat(self, messages: list[dict[str, str]], params: SamplingParams, on_event=None) -> RequestHandle:
        return self.engine.submit(GenerationRequest(messages=messages, params=params), on_event=on_event)

    def shutdown(self) -> None:
        self.engine.shutdown()
