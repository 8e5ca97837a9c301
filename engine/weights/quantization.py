"""Weight-only int8 and int4 quantization of a model's linear layers, with PyTorch's packed matmul kernels.

Measured on a 2-core CPU: the int8 kernel is fast with bf16 activations and slow with fp32 ones, so
quantized models compute in bf16 (fp16 on a GPU without bf16). A device without a packed kernel falls
back to dequantizing on the fly, which is correct but slower; `QuantizationReport` says which ran.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

INT4_GROUP_SIZE = 32
# From this many rows on, a CPU multiplies int8 weights faster by widening them to bf16 for one GEMM than with
# the packed int8 kernel, which is built for a few rows: measured on two cores (one thread, 576x1536 weights),
# 16 rows break even, 64 run 2.6x, 512 8.5x and 2048 4.5x faster widened. So prefill and wide decode batches
# widen, and one stream keeps the packed kernel (2x faster than widening at 8 rows).
INT8_WIDEN_ROWS = 16
# PyTorch's CPU int4 kernel costs the same per row from 4 rows on (576x3072 weight, two threads: 21 us a row),
# so a prefill of a few hundred rows is better served by widening the 4-bit weight to bf16 once (about
# 0.47 ms for that weight) and running one bf16 GEMM: measured 32 rows 0.83 against 0.74 ms, 64 rows 1.09
# against 1.52 ms, 240 rows 2.5 against 5.1 ms, 512 rows 5.1 against 10.8 ms. One stream's decode keeps the
# packed kernel; prefills and decode batches of this many rows widen.
INT4_WIDEN_ROWS = 48


@dataclass(frozen=True)
class QuantizationReport:
    mode: str
    layers_quantized: int
    layers_skipped: int
    kernel: str  # "packed" or "dequantize-on-the-fly"


def weight_only_linear(kind: tuple, x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., in] through quantized weights of `kind`: ("int8",), ("int8-dequantize",) (no packed kernel on
    this device), or ("int4-cpu" / "int4", group size). The modules below and the lean decoder's fused
    projections both call it. Activations go in the scales' dtype, contiguous: the int4 kernels refuse the
    strided view transformers hands the output head."""
    # a decode step's input is already flat, in the right dtype and contiguous: each skipped call counts there
    plain = x.dim() == 2 and x.dtype == scales.dtype and x.is_contiguous()
    flat = x if plain else x.reshape(-1, x.shape[-1]).to(scales.dtype).contiguous()
    name = kind[0]
    if name == "int8" and (flat.shape[0] < INT8_WIDEN_ROWS or flat.device.type != "cpu"):
        out = torch._weight_int8pack_mm(flat, weight, scales)
    elif name in ("int8", "int8-dequantize"):
        out = nn.functional.linear(flat, weight.to(scales.dtype)) * scales
    elif name == "int4-cpu" and flat.shape[0] >= INT4_WIDEN_ROWS and int4_widens(weight):
        out = flat @ widened_int4(weight, kind[1], scales)
    elif name == "int4-cpu":
        out = torch._weight_int4pack_mm_for_cpu(flat, weight, kind[1], scales)
    else:
        out = torch._weight_int4pack_mm(flat, weight, kind[1], scales)
    if bias is not None:
        out = out + bias
    return out if plain else out.reshape(*x.shape[:-1], out.shape[-1]).to(x.dtype)


@functools.cache
def _int4_tile() -> int:
    """Output channels per tile of `_convert_weight_to_int4pack_for_cpu`'s layout on this CPU (0: unknown).

    The packed weight is [N / tile, K, tile / 2] bytes: byte j of a tile row holds channel j in its low nibble
    and channel j + tile / 2 in its high one (64 on AVX-512, as read from PyTorch's kernel). The layout is an
    implementation detail, so it is read back from a packed pattern once rather than assumed."""
    out_features, in_features = 128, 64
    codes = (torch.arange(out_features * in_features, dtype=torch.int32).reshape(out_features, in_features) * 7) % 16
    try:
        packed = torch._convert_weight_to_int4pack_for_cpu(codes, 1)
    except (RuntimeError, NotImplementedError):
        return 0
    if packed.shape != (out_features, in_features // 2):
        return 0
    return next((tile for tile in (64, 32, 16) if torch.equal(_int4_codes(packed, tile).int(), codes.t())), 0)


def _int4_codes(packed: torch.Tensor, tile: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """The 4-bit codes of a CPU-packed weight [N, K / 2] as a [K, N] tensor of `dtype` (the weight transposed)."""
    out_features, in_features = packed.shape[0], packed.shape[1] * 2
    tiles = packed.view(out_features // tile, in_features, tile // 2).transpose(0, 1)  # [K, N / tile, tile / 2]
    codes = torch.empty(in_features, out_features // tile, 2, tile // 2, dtype=dtype, device=packed.device)
    codes[:, :, 0] = tiles & 15
    codes[:, :, 1] = tiles >> 4
    return codes.view(in_features, out_features)


def int4_widens(packed: torch.Tensor) -> bool:
    """Whether a CPU-packed int4 weight can be widened to bf16 (its layout is known and fills whole tiles)."""
    tile = _int4_tile()
    return tile > 0 and packed.dim() == 2 and packed.shape[0] % tile == 0


def widened_int4(packed: torch.Tensor, group_size: int, scales_and_zeros: torch.Tensor) -> torch.Tensor:
    """A CPU-packed int4 weight as a dense [K, N] matrix in the scales' dtype: code * scale + (zero - 8 * scale),
    what the packed kernel computes per group."""
    codes = _int4_codes(packed, _int4_tile(), scales_and_zeros.dtype)
    in_features, out_features = codes.shape
    scales = scales_and_zeros[..., 0].contiguous()  # [K / group, N]; contiguous, or addcmul runs 2x slower
    offsets = scales_and_zeros[..., 1] - 8 * scales
    grouped = codes.view(in_features // group_size, group_size, out_features)
    return torch.addcmul(offsets[:, None], grouped, scales[:, None]).view(in_features, out_features)


class Int8WeightOnlyLinear(nn.Module):
    """Per-output-channel symmetric int8 weights; activations stay in the compute dtype."""

    def __init__(self, linear: nn.Linear, compute_dtype: torch.dtype):
        super().__init__()
        weight = linear.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        self.register_buffer("weight_int8", torch.round(weight / scales[:, None]).clamp(-128, 127).to(torch.int8))
        self.register_buffer("scales", scales.to(compute_dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(compute_dtype), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.compute_dtype = compute_dtype
        self.packed = _probe(lambda: torch._weight_int8pack_mm(
            torch.zeros(1, self.in_features, dtype=compute_dtype, device=self.weight_int8.device), self.weight_int8, self.scales))

    @property
    def kind(self) -> tuple:
        return ("int8",) if self.packed else ("int8-dequantize",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return weight_only_linear(self.kind, x, self.weight_int8, self.scales, self.bias)


class Int4WeightOnlyLinear(nn.Module):
    """Asymmetric 4-bit weights in groups of 32 input channels, packed for PyTorch's int4 matmul."""

    def __init__(self, linear: nn.Linear, compute_dtype: torch.dtype, group_size: int = INT4_GROUP_SIZE):
        super().__init__()
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        grouped = weight.reshape(out_features, in_features // group_size, group_size)
        low, high = grouped.amin(-1, keepdim=True), grouped.amax(-1, keepdim=True)
        scales = (high - low).clamp(min=1e-8) / 15.0
        codes = torch.round((grouped - low) / scales).clamp(0, 15).to(torch.int32).reshape(out_features, in_features)
        zeros = low + 8 * scales  # the kernels compute (code - 8) * scale + zero
        scales_and_zeros = torch.stack([scales.squeeze(-1), zeros.squeeze(-1)], dim=-1).transpose(0, 1).contiguous()
        self.group_size, self.in_features, self.out_features = group_size, in_features, out_features
        self.compute_dtype = compute_dtype
        self.on_cpu = weight.device.type == "cpu"
        if self.on_cpu:
            packed = torch._convert_weight_to_int4pack_for_cpu(codes, 1)
        else:
            packed = torch._convert_weight_to_int4pack(((codes[:, ::2] << 4) | codes[:, 1::2]).to(torch.uint8), 8)
        self.register_buffer("weight_int4", packed)
        self.register_buffer("scales_and_zeros", scales_and_zeros.to(compute_dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(compute_dtype), requires_grad=False)

    @property
    def kind(self) -> tuple:
        return ("int4-cpu" if self.on_cpu else "int4", self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return weight_only_linear(self.kind, x, self.weight_int4, self.scales_and_zeros, self.bias)


class Int8Embedding(nn.Module):
    """Per-row symmetric int8 embedding table (the largest tensor of a small model)."""

    def __init__(self, embedding: nn.Embedding, compute_dtype: torch.dtype):
        super().__init__()
        weight = embedding.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        self.register_buffer("weight_int8", torch.round(weight / scales[:, None]).clamp(-128, 127).to(torch.int8))
        self.register_buffer("scales", scales.to(compute_dtype))
        self.padding_idx = embedding.padding_idx
        self.num_embeddings, self.embedding_dim = weight.shape
        self.compute_dtype = compute_dtype

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = nn.functional.embedding(ids, self.weight_int8).to(self.compute_dtype)
        return rows * self.scales[ids].unsqueeze(-1)


def _probe(call) -> bool:
    try:
        call()
        return True
    except (RuntimeError, NotImplementedError):
        return False


def _int4_fits(linear: nn.Linear) -> bool:
    return linear.in_features % INT4_GROUP_SIZE == 0 and linear.out_features % 8 == 0


def quantize_model(model: nn.Module, mode: str, compute_dtype: torch.dtype) -> QuantizationReport:
    """Replace every nn.Linear (the output head included) with its weight-only quantized form, in place.

    Embedding tables become int8 in both modes: 4-bit token embeddings cost too much quality.
    """
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    quantized = skipped = 0
    kernels = set()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Embedding):
                setattr(parent, name, Int8Embedding(child, compute_dtype))
                continue
            if not isinstance(child, nn.Linear):
                continue
            if mode == "int8":
                replacement = Int8WeightOnlyLinear(child, compute_dtype)
                kernels.add("packed" if replacement.packed else "dequantize-on-the-fly")
            elif mode == "int4" and _int4_fits(child):
                replacement = Int4WeightOnlyLinear(child, compute_dtype)
                kernels.add("packed")
            else:
                skipped += 1
                continue
            setattr(parent, name, replacement)
            quantized += 1
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if tied and isinstance(head, Int8WeightOnlyLinear) and isinstance(embedding, Int8Embedding):
        # Per-row int8 of the table is exactly per-output-channel int8 of the tied head: store it once.
        head.weight_int8, head.scales = embedding.weight_int8, embedding.scales
    return QuantizationReport(mode, quantized, skipped, "+".join(sorted(kernels)) or "none")
