"""In-process inference engine: model loading, sampling, the loop thread with its scheduler, request streams.

Knows nothing of Qt, users or SQLite; `console/` drives it and `ui/` draws it.
"""

import os

# Loads report progress through their callback; the console bars of the libraries underneath (the GGUF
# converter's, read when tqdm is imported) would only be noise.
os.environ.setdefault("TQDM_DISABLE", "1")

from engine.engine import InferenceEngine
from engine.errors import (
    DeviceUnavailable,
    EngineBusy,
    EngineError,
    InvalidRequest,
    ModelLoadError,
    NoModelLoaded,
    PrecisionUnsupported,
    PromptTooLong,
    SamplingFailed,
)
from engine.weights.loader import LoadedModelInfo, ModelSpec
from engine.request import FinishReason, GenerationRequest, GenerationResult, RequestHandle, StreamEvent
from engine.sampling_params import SamplingParams

__all__ = [
    "DeviceUnavailable",
    "EngineBusy",
    "EngineError",
    "FinishReason",
    "GenerationRequest",
    "GenerationResult",
    "InferenceEngine",
    "InvalidRequest",
    "LoadedModelInfo",
    "ModelLoadError",
    "ModelSpec",
    "NoModelLoaded",
    "PrecisionUnsupported",
    "PromptTooLong",
    "RequestHandle",
    "SamplingFailed",
    "SamplingParams",
    "StreamEvent",
]
