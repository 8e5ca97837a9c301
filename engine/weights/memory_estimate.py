"""How much memory a load will take, before loading: weights by the bytes each precision stores, the KV cache
for a number of sequences and tokens, the runtime overhead, and a margin; and how much the device has free.

The weights come from tensor shapes alone — `config.json` with the safetensors headers, a GGUF file's tensor
table, or a random shape's config built on the meta device — and are counted the way `quantization.py`
stores them (int8 and int4 replace linear layers; embedding tables become int8; a tied int8 head shares the
table). Nothing here reads a weight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from engine.errors import ModelLoadError
from engine.weights.devices import QUANTIZED, resolve_device, resolve_precision
from engine.weights.quantization import INT4_GROUP_SIZE

# Used until a load on the device has been measured (`MemoryEstimate.overhead_bytes` then comes from it).
DEFAULT_OVERHEAD_BYTES = {"cpu": 256 * 2**20, "cuda": 512 * 2**20}
MARGIN_FRACTION = 0.10
# The KV cache of a load is planned for this many tokens per sequence, or the context window if shorter. The
# engine still serves the full window (its cache grows on demand); the estimate says which figure it used.
PLANNING_CONTEXT_TOKENS = 4096
_EMBEDDING_NAMES = ("embed_tokens", "wte", "wpe", "word_embeddings", "token_embd", "embed_in", "embed_positions")
_GGUF_HEAD = "output.weight"


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model: its tensors (name, shape as [out, in] for matrices) and the
    figures of its attention."""

    tensors: tuple[tuple[str, tuple[int, ...]], ...]
    layers: int
    kv_heads: int
    head_dim: int
    context_length: int
    tied_embeddings: bool

    @property
    def parameters(self) -> int:
        return sum(_elements(shape) for _name, shape in self.tensors)


@dataclass(frozen=True)
class MemoryEstimate:
    """An itemised estimate for one load or one sweep point, with the free memory it was judged against."""

    precision: str
    device: str  # "cpu" or "cuda"
    weight_bytes: int
    kv_cache_bytes: int
    sequences: int
    context_tokens: int
    overhead_bytes: int
    free_bytes: int | None = None  # None: not known

    @property
    def margin_bytes(self) -> int:
        return int(MARGIN_FRACTION * (self.weight_bytes + self.kv_cache_bytes + self.overhead_bytes))

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes + self.overhead_bytes + self.margin_bytes

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.total_bytes <= self.free_bytes

    def items(self) -> dict[str, int]:
        return {"weights": self.weight_bytes, "kv_cache": self.kv_cache_bytes, "overhead": self.overhead_bytes,
                "margin": self.margin_bytes}


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for dimension in shape:
        count *= int(dimension)
    return count


# --- reading shapes ----------------------------------------------------------------------------------------
def read_model_shape(path: Path) -> ModelShape:
    """The shape of a Hugging Face folder (config.json + safetensors headers) or a GGUF file (its header)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"Model not found: {path}")
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _gguf_shape(path)
    if path.is_dir():
        return _hf_shape(path)
    raise ModelLoadError(f"{path.name} is neither a GGUF file nor a Hugging Face model folder.")


def _hf_shape(folder: Path) -> ModelShape:
    from engine.weights.inspection import read_safetensors_entries

    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder: it has no config.json.")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{config_path} cannot be read: {error}") from error
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:  # pickled .bin weights are not opened: the config says the shapes
        return shape_from_config(config)
    tensors = tuple((name, tuple(shape)) for file in weights for name, _dtype, shape in read_safetensors_entries(file))
    return _shape_with_attention(tensors, config)


def _shape_with_attention(tensors: tuple, config: dict) -> ModelShape:
    text = config.get("text_config") or config  # multimodal configs nest the language model's figures
    heads = int(text.get("num_attention_heads") or 1)
    hidden = int(text.get("hidden_size") or 0)
    tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
    if tied:  # a tied head is the embedding table: stored once
        tensors = tuple((name, dims) for name, dims in tensors if not name.startswith("lm_head."))
    return ModelShape(
        tensors=tensors,
        layers=int(text.get("num_hidden_layers") or 0),
        kv_heads=int(text.get("num_key_value_heads") or heads),
        head_dim=int(text.get("head_dim") or (hidden // heads if heads else 0)),
        context_length=int(text.get("max_position_embeddings") or 2048),
        tied_embeddings=tied,
    )


def shape_from_config(config: dict) -> ModelShape:
    """Shapes from a config alone: the model is built on the meta device (no memory), its state dict read."""
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(config)
    model_type = fields.pop("model_type", None)
    if model_type is None:
        raise ModelLoadError("The model's config.json names no model_type: its memory cannot be estimated.")
    try:
        built = AutoConfig.for_model(model_type, **{k: v for k, v in fields.items() if not k.startswith("_")})
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(built)
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f"Cannot estimate the memory of a '{model_type}' model: {error}") from error
    tensors = tuple((name, tuple(tensor.shape)) for name, tensor in model.state_dict().items())
    return _shape_with_attention(tensors, built.to_dict())


def _gguf_shape(path: Path) -> ModelShape:
    metadata, tensors = read_gguf_header(path)
    architecture = str(metadata.get("general.architecture", ""))

    def number(key: str, default: int = 0) -> int:
        value = metadata.get(f"{architecture}.{key}")
        return int(value) if isinstance(value, (int, float)) else default

    # GGUF lists dimensions innermost first: a matrix [in, out] there is [out, in] here
    tensors = tuple((name, tuple(reversed(dims))) for name, dims in tensors)
    heads = number("attention.head_count", 1)
    hidden = number("embedding_length")
    return ModelShape(
        tensors=tensors,
        layers=number("block_count"),
        kv_heads=number("attention.head_count_kv", heads),
        head_dim=number("attention.key_length", hidden // heads if heads else 0),
        context_length=number("context_length", 2048),
        tied_embeddings=not any(name == _GGUF_HEAD for name, _shape in tensors),
    )


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def read_gguf_header(path: Path) -> tuple[dict, list[tuple[str, tuple[int, ...]]]]:
    """The scalar and string metadata (arrays are skipped) and each tensor's name and dimensions, read straight
    from the header. gguf's own reader builds every vocabulary string as an array first: seconds for a 50k
    vocabulary, too slow for an estimate shown as the selection changes."""
    import struct

    from engine.weights.gguf_cache import GGUF_MAGIC

    def read(handle, fmt: str):
        size = struct.calcsize(fmt)
        data = handle.read(size)
        if len(data) < size:
            raise ModelLoadError(f"{path.name} is truncated: its GGUF header ends early.")
        return struct.unpack(fmt, data)[0]

    def string(handle) -> str:
        return handle.read(read(handle, "<Q")).decode("utf-8", errors="replace")

    def value(handle, kind: int):
        if kind in _GGUF_SCALARS:
            return read(handle, _GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return string(handle)
        if kind == _GGUF_ARRAY:
            item_kind, count = read(handle, "<I"), read(handle, "<Q")
            if item_kind in _GGUF_SCALARS:
                handle.seek(struct.calcsize(_GGUF_SCALARS[item_kind]) * count, 1)
            else:
                for _ in range(count):
                    value(handle, item_kind)
            return None
        raise ModelLoadError(f"{path.name} is a damaged GGUF file: unknown metadata type {kind}.")

    try:
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise ModelLoadError(f"{path.name} is not a GGUF file (it does not start with 'GGUF').")
            read(handle, "<I")  # version
            tensor_count, field_count = read(handle, "<Q"), read(handle, "<Q")
            metadata = {}
            for _ in range(field_count):
                key = string(handle)
                metadata[key] = value(handle, read(handle, "<I"))
            tensors = []
            for _ in range(tensor_count):
                name = string(handle)
                dims = tuple(read(handle, "<Q") for _ in range(read(handle, "<I")))
                read(handle, "<I"), read(handle, "<Q")  # type, offset
                tensors.append((name, dims))
    except OSError as error:
        raise ModelLoadError(f"Cannot read {path}: {error.strerror}.") from error
    return metadata, tensors


# --- counting bytes ----------------------------------------------------------------------------------------
def _is_embedding(name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and any(part in name for part in _EMBEDDING_NAMES)


def _quantized_linear_bytes(precision: str, out_features: int, in_features: int, compute_bytes: int) -> int:
    """Bytes of one linear layer's weight as `quantization.py` stores it (biases are counted on their own)."""
    if precision == "int8":  # int8 codes + one scale per output channel
        return out_features * in_features + out_features * compute_bytes
    if in_features % INT4_GROUP_SIZE == 0 and out_features % 8 == 0:  # packed nibbles + (scale, zero) per group
        return out_features * in_features // 2 + (in_features // INT4_GROUP_SIZE) * out_features * 2 * compute_bytes
    return out_features * in_features * compute_bytes  # int4 cannot pack it: kept in the compute dtype


def estimate_weight_bytes(shape: ModelShape, precision: str, compute_dtype: torch.dtype) -> int:
    """Bytes of the weights once loaded at `precision` (resolved: fp32, bf16, fp16, int8 or int4)."""
    compute_bytes = torch.empty((), dtype=compute_dtype).element_size()
    total = 0
    for name, dims in shape.tensors:
        elements = _elements(dims)
        if precision not in QUANTIZED or len(dims) != 2 or not name.endswith("weight"):
            total += elements * compute_bytes  # norms, biases, and every tensor of an unquantized model
        elif _is_embedding(name, dims):
            rows = dims[0]
            total += elements + rows * compute_bytes  # int8 rows + one scale per row
            if shape.tied_embeddings and precision == "int4" and ("embed_tokens" in name or "token_embd" in name):
                total += _quantized_linear_bytes("int4", dims[0], dims[1], compute_bytes)  # the head is its own int4 copy
        else:
            total += _quantized_linear_bytes(precision, dims[0], dims[1], compute_bytes)
    return total


def kv_bytes_per_token(shape: ModelShape, compute_dtype: torch.dtype) -> int:
    """Keys and values of one token of one sequence: 2 × layers × KV heads × head dim × bytes."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * torch.empty((), dtype=compute_dtype).element_size()


def free_memory_bytes(device: str) -> int:
    """Memory a new load can use: the CUDA device's free memory, else the machine's available RAM."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return int(psutil.virtual_memory().available)


def estimate_load(
    shape: ModelShape,
    precision: str = "auto",
    device: str = "auto",
    sequences: int = 8,
    context_tokens: int | None = None,
    overhead_bytes: int | None = None,
    free_bytes: int | None = None,
) -> MemoryEstimate:
    """Itemised memory for serving `sequences` sequences of `context_tokens` tokens (default: the planning
    context) at `precision` on `device`; `free_bytes` defaults to what the device has free now."""
    torch_device = resolve_device(device)
    resolved, dtype = resolve_precision(precision, torch_device)
    context = context_tokens or min(shape.context_length, PLANNING_CONTEXT_TOKENS)
    kind = torch_device.type
    return MemoryEstimate(
        precision=resolved,
        device=kind,
        weight_bytes=estimate_weight_bytes(shape, resolved, dtype),
        kv_cache_bytes=kv_bytes_per_token(shape, dtype) * sequences * context,
        sequences=sequences,
        context_tokens=context,
        overhead_bytes=DEFAULT_OVERHEAD_BYTES[kind] if overhead_bytes is None else overhead_bytes,
        free_bytes=free_memory_bytes(str(torch_device)) if free_bytes is None else free_bytes,
    )
