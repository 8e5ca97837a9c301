"""Linear layers as plain tensors and a layout, so one function applies them whatever their precision.

The lean decoder passes a layer's weights to its step function as arguments (not as module attributes), so
torch.compile traces one graph that serves every layer. A `Projection` fuses the layers that read the same
input (query/key/value, gate/up) into one matmul where their kinds allow: dense and packed-int8 weights are
concatenated, and each original module is re-pointed at a view of its slice, so nothing is stored twice and
the Hugging Face forward keeps working. int4 weights, packed in tiles, stay separate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.weights.quantization import Int4WeightOnlyLinear, Int8WeightOnlyLinear, weight_only_linear

# A layout is a tuple of parts: ("dense",) or a quantized module's `kind`. Its tensors follow in one flat
# tuple: dense takes (weight, bias), the others (weight, scales, bias); a bias may be None.


class UnsupportedLayer(ValueError):
    pass


class Projection:
    def __init__(self, modules: list[nn.Module]):
        self.sizes = tuple(module.out_features for module in modules)
        if len(modules) > 1 and all(type(m) is nn.Linear for m in modules):
            weight = _fuse(modules, "weight", lambda m, w: setattr(m, "weight", nn.Parameter(w, requires_grad=False)))
            parts = [(("dense",), (weight, _fused_bias(modules, weight.dtype, weight.device)))]
        elif len(modules) > 1 and all(type(m) is Int8WeightOnlyLinear and m.packed for m in modules):
            weight = _fuse(modules, "weight_int8", lambda m, w: setattr(m, "weight_int8", w))
            scales = _fuse(modules, "scales", lambda m, s: setattr(m, "scales", s))
            parts = [(("int8",), (weight, scales, _fused_bias(modules, scales.dtype, scales.device)))]
        else:
            parts = [_part(module) for module in modules]
        self.layout: tuple[tuple, ...] = tuple(kind for kind, _ in parts)
        self.tensors: tuple[torch.Tensor | None, ...] = tuple(t for _, tensors in parts for t in tensors)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return project(self.layout, self.tensors, x)


def project(layout: tuple[tuple, ...], tensors: tuple[torch.Tensor | None, ...], x: torch.Tensor) -> torch.Tensor:
    """x [..., in] through every part of `layout`, outputs concatenated: [..., sum of out]."""
    outputs = []
    index = 0
    for kind in layout:
        if kind[0] == "dense":
            weight, bias = tensors[index:index + 2]
            index += 2
            outputs.append(F.linear(x, weight, bias))
        else:
            weight, scales, bias = tensors[index:index + 3]
            index += 3
            outputs.append(weight_only_linear(kind, x, weight, scales, bias))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)


def _part(module: nn.Module) -> tuple[tuple, tuple]:
    if type(module) is nn.Linear:
        return ("dense",), (module.weight, module.bias)
    if type(module) is Int8WeightOnlyLinear:
        return module.kind, (module.weight_int8, module.scales, module.bias)
    if type(module) is Int4WeightOnlyLinear:
        return module.kind, (module.weight_int4, module.scales_and_zeros, module.bias)
    raise UnsupportedLayer(f"linear layer of type {type(module).__name__}")


def _fuse(modules: list[nn.Module], name: str, repoint) -> torch.Tensor:
    tensors = [getattr(m, name).detach() for m in modules]
    fused = torch.cat(tensors)
    start = 0
    for module, tensor in zip(modules, tensors):
        repoint(module, fused[start:start + tensor.shape[0]])
        start += tensor.shape[0]
    return fused


def _fused_bias(modules: list[nn.Module], dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
    if all(m.bias is None for m in modules):
        return None
    return torch.cat([m.bias.detach().to(dtype) if m.bias is not None else torch.zeros(m.out_features, dtype=dtype, device=device)
                      for m in modules])
