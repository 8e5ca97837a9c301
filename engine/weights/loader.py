"""Loading a model (Hugging Face folder or GGUF file) onto a device at a precision, with progress reports."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from engine.weights import gguf_cache
from engine.weights.model_folder import check_tokenizer_files, resolve_model_path
from engine.weights.devices import QUANTIZED, choose_precision, describe_device, resolve_device
from engine.weights.quantization import quantize_model
from engine.errors import ModelLoadError

ProgressCallback = Callable[[float | None, str], None]  # (fraction 0..1 or None when unknown, message)


@dataclass(frozen=True)
class ModelSpec:
    path: str
    precision: str = "auto"
    device: str = "auto"
    name: str | None = None  # shown to the user; defaults to the file or folder name
    # GGUF only: SHA-256 by path of the converted copy, as the caller recorded it (see gguf_cache.materialize)
    converted_files: Mapping[str, str] | None = None


@dataclass(frozen=True)
class LoadedModelInfo:
    name: str
    path: str
    format: str  # "hf" or "gguf"
    architecture: str
    parameters: int
    precision: str
    device: str
    context_length: int
    weight_bytes: int
    load_seconds: float
    has_chat_template: bool
    quantization: str = "none"  # for int8/int4: layers quantized and the kernel used
    converted_files: tuple[tuple[str, str], ...] = ()  # GGUF only: (path, SHA-256) of the converted copy loaded
    precision_reason: str = ""  # what `auto` chose and why ("" when the precision was named)

    @property
    def precision_label(self) -> str:
        """'int8' or, for `auto`, 'int8 (auto: int8 is the fastest on this CPU within 1 % quality)'."""
        return f"{self.precision} (auto: {self.precision_reason})" if self.precision_reason else self.precision


@dataclass
class LoadedModel:
    """What the engine's loop thread owns: never handed to callers."""

    model: Any
    tokenizer: Any
    info: LoadedModelInfo
    device: torch.device
    eos_token_ids: frozenset[int]


def _no_progress(_fraction: float | None, _message: str) -> None:
    pass


def check_hf_folder(folder: Path) -> str:
    """The folder's `model_type`, once it is known to hold a config, weights and a tokenizer (raises ModelLoadError)."""
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder: it has no config.json.")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ModelLoadError(f"{folder} has no weights (no .safetensors or .bin files).")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{config_path} cannot be read: {error}") from error
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path} is not a model configuration (it holds no JSON object).")
    check_tokenizer_files(folder)
    return str(config.get("model_type", "unknown"))


def _eos_ids(model, tokenizer) -> frozenset[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def weight_bytes(model) -> int:
    """Bytes of all weights and quantized buffers, counting storage shared by tied weights once."""
    seen, total = set(), 0
    for tensor in model.state_dict().values():
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in seen:
            seen.add(pointer)
            total += tensor.untyped_storage().nbytes()
    return total


def quantize_and_describe(model, precision: str, dtype: torch.dtype) -> str:
    """Quantize the model's linear layers in place; returns the `quantization` line of its info."""
    report = quantize_model(model, precision, dtype)
    quantization = f"{report.layers_quantized} linear layers {precision} ({report.kernel} kernel)"
    if report.layers_skipped:
        quantization += f", {report.layers_skipped} kept at {dtype}".replace("torch.", "")
    return quantization


def _quiet_transformers() -> None:
    """Progress is reported through `progress`; transformers' own console bars would only be noise."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def load_model(spec: ModelSpec, cache_dir: Path, progress: ProgressCallback = _no_progress) -> LoadedModel:
    """Load the model described by `spec`. Blocking: call it from a worker thread, never a UI thread."""
    started = time.perf_counter()
    _quiet_transformers()
    path = Path(spec.path).expanduser()
    device = resolve_device(spec.device)
    precision, dtype, precision_reason = choose_precision(spec.precision, device)
    progress(0.02, f"Checking {path.name}")
    resolve_model_path(path)  # refuses a missing path or a link loop
    converted_files: tuple[tuple[str, str], ...] = ()
    if path.is_file() and path.suffix.lower() == ".gguf":
        model_format = "gguf"
        copy = gguf_cache.materialize(path, cache_dir, progress, spec.converted_files)
        folder, converted_files = copy.folder, copy.files
    elif path.is_dir():
        model_format = "hf"
        folder = path
    else:
        raise ModelLoadError(f"{path.name} is neither a GGUF file nor a Hugging Face model folder.")
    model_type = check_hf_folder(folder)

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError) as error:
        raise ModelLoadError(f"Unsupported architecture '{model_type}' in {path.name}: {error}") from error
    progress(0.7, f"Loading weights ({precision}) onto {device.type}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except ValueError as error:
        raise ModelLoadError(f"Unsupported model in {path.name}: {error}") from error
    except Exception as error:  # truncated safetensors, bad JSON, missing tensors...
        raise ModelLoadError(f"Could not load {path.name}: {error}") from error
    try:
        model = model.to(device).eval()
    except torch.OutOfMemoryError as error:
        raise ModelLoadError(f"Not enough memory on {device} for {path.name} at {precision}.") from error

    parameters = sum(p.numel() for p in model.parameters())
    quantization = "none"
    if precision in QUANTIZED:
        progress(0.85, f"Quantizing weights to {precision}")
        quantization = quantize_and_describe(model, precision, dtype)

    progress(0.9, "Warming up")
    with torch.inference_mode():
        model(torch.tensor([[tokenizer.eos_token_id or 0]], device=device), use_cache=False)

    info = LoadedModelInfo(
        name=spec.name or path.name.removesuffix(".gguf"),
        path=str(path),
        format=model_format,
        architecture=model_type,
        parameters=parameters,
        precision=precision,
        device=describe_device(device),
        context_length=int(getattr(config, "max_position_embeddings", 0) or 2048),
        weight_bytes=weight_bytes(model),
        load_seconds=time.perf_counter() - started,
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        quantization=quantization,
        precision_reason=precision_reason,
        converted_files=converted_files,
    )
    progress(1.0, "Ready")
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, device=device, eos_token_ids=_eos_ids(model, tokenizer))
