"""Describing a model without loading it: format, architecture, parameter count, precision and its files.

Reads only headers (safetensors JSON headers, GGUF tensor info), so it is quick for multi-GB models. The
console's model registry uses it to refuse bad input at import; the loader's own checks are reused here.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from engine.weights import gguf_cache
from engine.errors import ModelLoadError
from engine.weights.loader import check_hf_folder
from engine.weights.model_folder import model_files, resolve_model_path

_SAFETENSORS_PRECISIONS = {
    "F64": "fp64", "F32": "fp32", "F16": "fp16", "BF16": "bf16", "F8_E4M3": "fp8", "F8_E5M2": "fp8",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}
# Bytes per element of each dtype the safetensors release beside torch loads; any other dtype cannot load.
SAFETENSORS_ITEM_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "C64": 8,
}
_TORCH_DTYPE_PRECISIONS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the format's own limit


@dataclass(frozen=True)
class ModelDescription:
    format: str  # "hf" or "gguf"
    architecture: str
    parameters: int | None  # None when only pickled .bin weights say it, and those are not opened here
    precision: str  # "fp32", "bf16", "Q4_1", "gptq 4-bit", ...
    root: Path  # the folder that `files` are relative to
    files: tuple[str, ...]  # every file that makes up the model, relative, "/"-separated, sorted


def describe_model(path: Path) -> ModelDescription:
    """Describe a Hugging Face model folder or a GGUF file; raises ModelLoadError saying what is wrong."""
    path = resolve_model_path(Path(path))
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"Cannot read {path}: permission denied.")
    if path.is_file() and path.suffix.lower() == ".gguf":
        return describe_gguf(path)
    if path.is_dir():
        return describe_hf_folder(path)
    raise ModelLoadError(f"{path.name} is neither a GGUF file nor a Hugging Face model folder.")


def describe_gguf(path: Path) -> ModelDescription:
    gguf_cache.check_gguf_header(path)
    reader = gguf_cache.open_gguf(path)
    architecture = gguf_cache.gguf_architecture(path, reader)
    gguf_cache.check_gguf_architecture(path, architecture)
    parameters = sum(int(tensor.n_elements) for tensor in reader.tensors)
    return ModelDescription(
        format="gguf",
        architecture=architecture,
        parameters=parameters,
        precision=_gguf_precision(reader),
        root=path.parent,
        files=(path.name,),
    )


def _gguf_precision(reader) -> str:
    """The file type llama.cpp recorded (e.g. Q4_1), else the type most weights are stored in."""
    from gguf.constants import LlamaFileType

    field = reader.fields.get("general.file_type")
    if field is not None:
        try:
            return LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
        except (ValueError, IndexError):
            pass
    weights = Counter()
    for tensor in reader.tensors:
        weights[tensor.tensor_type.name] += int(tensor.n_elements)
    return weights.most_common(1)[0][0] if weights else "unknown"


def describe_hf_folder(folder: Path) -> ModelDescription:
    model_type = check_hf_folder(folder)
    config = json.loads((folder / "config.json").read_text())
    check_hf_architecture(folder, model_type)
    files = model_files(folder)
    weights = [name for name in files if name.endswith(".safetensors")]
    parameters: int | None = None
    elements_by_precision: Counter[str] = Counter()
    if weights:
        parameters = 0
        for name in weights:
            for dtype, shape in read_safetensors_header(folder / name):
                count = 1
                for dimension in shape:
                    count *= int(dimension)
                parameters += count
                elements_by_precision[_SAFETENSORS_PRECISIONS.get(dtype, dtype.lower())] += count
    return ModelDescription(
        format="hf",
        architecture=model_type,
        parameters=parameters,
        precision=_hf_precision(config, elements_by_precision),
        root=folder,
        files=files,
    )


def check_hf_architecture(folder: Path, model_type: str) -> None:
    """Refuse a model_type this transformers release cannot build (same words as the loader's refusal)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelLoadError(
            f"Unsupported architecture '{model_type}' in {folder.name}: this version of transformers does not know it."
        )


def _hf_precision(config: dict, elements_by_precision: Counter) -> str:
    quantization = config.get("quantization_config")
    if isinstance(quantization, dict):
        method = str(quantization.get("quant_method", "quantized"))
        bits = quantization.get("bits") or quantization.get("w_bit")
        return f"{method} {bits}-bit" if bits else method
    if elements_by_precision:
        return elements_by_precision.most_common(1)[0][0]
    dtype = config.get("torch_dtype") or config.get("dtype")
    return _TORCH_DTYPE_PRECISIONS.get(str(dtype), "unknown")


def read_safetensors_header(path: Path) -> list[tuple[str, list[int]]]:
    """(dtype, shape) of each tensor; refuses a file whose header or length does not add up (truncated)."""
    return [(dtype, shape) for _name, dtype, shape in read_safetensors_entries(path)]


def read_safetensors_entries(path: Path) -> list[tuple[str, str, list[int]]]:
    """(name, dtype, shape) of each tensor, with the checks of `read_safetensors_header`."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise ModelLoadError(f"{path.name} is truncated: it is too short to be a safetensors file.")
            (header_length,) = struct.unpack("<Q", prefix)
            if header_length > min(_MAX_SAFETENSORS_HEADER, size - 8):
                raise ModelLoadError(f"{path.name} is truncated or damaged: its header claims {header_length:,} bytes.")
            header = json.loads(handle.read(header_length))
    except OSError as error:
        raise ModelLoadError(f"Cannot read {path}: {error.strerror}.") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path.name} is damaged: its safetensors header is not valid JSON ({error}).") from error
    tensors: list[tuple[str, str, list[int]]] = []
    data_end = 0
    try:
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype, shape = str(entry["dtype"]), [int(d) for d in entry["shape"]]
            begin, end = (int(offset) for offset in entry["data_offsets"])
            if dtype not in SAFETENSORS_ITEM_BYTES:
                known = ", ".join(SAFETENSORS_ITEM_BYTES)
                raise ModelLoadError(
                    f"{path.name} stores tensor '{name}' as '{dtype}', a type that cannot be loaded (known types: "
                    f"{known}). The file is damaged or was written by an incompatible tool."
                )
            elements = 1
            for dimension in shape:
                elements *= dimension
            if min(shape, default=0) < 0 or end - begin != elements * SAFETENSORS_ITEM_BYTES[dtype]:
                raise ModelLoadError(
                    f"{path.name} is damaged: tensor '{name}' ({dtype} {shape}) needs "
                    f"{elements * SAFETENSORS_ITEM_BYTES[dtype]:,} bytes but its header gives it {end - begin:,}."
                )
            data_end = max(data_end, end)
            tensors.append((name, dtype, shape))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise ModelLoadError(f"{path.name} is damaged: its safetensors header is malformed ({error}).") from error
    expected = 8 + header_length + data_end
    if size < expected:
        raise ModelLoadError(
            f"{path.name} is truncated: its header describes {expected:,} bytes but the file holds {size:,}."
        )
    if size > expected:
        raise ModelLoadError(f"{path.name} is damaged: {size - expected:,} unexpected bytes follow its tensors.")
    return tensors

