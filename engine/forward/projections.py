"""Linear layers as plain tensors and a layout, so one function applies them whatever their precision.

The lean decoder passes a layer's weights to its step function as arguments (not as module attributes), so
torch.compile traces one graph that serves every layer. A `Projection` fuses the layers that read the same
input (query/key/value, gate/up) into one matmul where their kinds allow: dense and packed-int8 weights are
concatenated, and each original module is re-pointed at a view of its slice, so nothing is stored twice and
the Hugging Face forward keeps working.

bf16 weights on a CPU are packed once for oneDNN (engine/weights/onednn.py: 1.1x to 1.45x faster matmuls),
and int4 weights, packed in tiles for PyTorch's int4 kernel, are fused by concatenating their packed rows
(one stream, SmolLM2's q/k/v and gate/up: 1.6x faster than five separate calls). Neither kind can be viewed
per module, so the original modules are replaced by `PackedSlice` modules that take their slice of the
group's output; the slices of one group called with the same input, as transformers' attention and MLP call
them, share one matmul.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.weights import onednn
from engine.weights.quantization import Int4WeightOnlyLinear, Int8WeightOnlyLinear, weight_only_linear

# A layout is a tuple of parts: ("dense",) or a quantized module's `kind`. Its tensors follow in one flat
# tuple: dense takes (weight, bias), the others (weight, scales, bias); a bias may be None.


class UnsupportedLayer(ValueError):
    pass


class Projection:
    def __init__(self, modules: list[nn.Module], owners: list[tuple[nn.Module, str]] | None = None,
                 pack: bool = False):
        """`owners`: (parent module, attribute) of each module, needed to replace them with packed slices;
        `pack`: pack dense bf16 CPU weights for oneDNN where it can (see the module's docstring)."""
        self.sizes = tuple(module.out_features for module in modules)
        group = None
        if modules and all(type(m) is PackedSlice for m in modules) and _whole_group(modules):
            group = modules[0].group  # packed by an earlier decoder on this model
        elif owners is not None:
            if pack and packable(modules):
                group = PackedGroup.bf16(modules)
            elif len(modules) > 1 and int4_fusable(modules):
                group = PackedGroup.int4(modules)  # None where the fused kernel disagrees
            if group is not None:
                for index, (owner, name) in enumerate(owners):
                    setattr(owner, name, PackedSlice(group, index))
        if group is not None:
            parts = [(group.kind, group.tensors)]
        elif len(modules) > 1 and all(type(m) is nn.Linear for m in modules):
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
    if len(layout) == 1 and layout[0][0] not in ("dense", "packed"):  # one quantized part: no loop, no cat
        return weight_only_linear(layout[0], x, *tensors)
    outputs = []
    index = 0
    for kind in layout:
        if kind[0] == "dense":
            weight, bias = tensors[index:index + 2]
            index += 2
            outputs.append(F.linear(x, weight, bias))
        elif kind[0] == "packed":
            weight, bias = tensors[index:index + 2]
            index += 2
            outputs.append(onednn.packed_linear(x, weight, bias))
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


# --- bf16 weights packed for oneDNN -------------------------------------------------------------------------------

def packable(modules: list[nn.Module]) -> bool:
    """Plain bf16 CPU linear layers (the caller leaves out a weight that something else shares, such as a tied
    output head's embedding table), on a build whose oneDNN packs bf16."""
    return all(type(m) is nn.Linear and m.weight.dtype == torch.bfloat16 and m.weight.device.type == "cpu"
               for m in modules) and onednn.packing_works()


def int4_fusable(modules: list[nn.Module]) -> bool:
    """int4 layers of one kind and group size on one input: their packed rows concatenate into one weight."""
    return all(type(m) is Int4WeightOnlyLinear for m in modules) and len({m.kind for m in modules}) == 1 \
        and len({m.in_features for m in modules}) == 1


class PackedGroup:
    """The fused weight of some linear layers in a layout that has no per-module views (bf16 packed for oneDNN,
    int4 packed in tiles), and one shared output per input."""

    def __init__(self, kind: tuple, tensors: tuple, sizes: list[int], in_features: int):
        self.kind, self.tensors, self.in_features = kind, tensors, in_features
        self.bounds = [(sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))]
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self._unserved: set[int] = set()

    @classmethod
    def bf16(cls, modules: list[nn.Module]) -> PackedGroup:
        # one module: its own weight (a copy would double the transient memory of, say, a 467 MB output head)
        fused = modules[0].weight.detach() if len(modules) == 1 else torch.cat([m.weight.detach() for m in modules])
        tensors = (onednn.pack(fused), _fused_bias(modules, fused.dtype, fused.device))
        return cls(("packed",), tensors, [m.out_features for m in modules], fused.shape[1])

    @classmethod
    def int4(cls, modules: list[nn.Module]) -> PackedGroup | None:
        """The layers' packed rows and scales concatenated; None where the fused kernel would not compute what
        the separate ones do (a tile layout that spans rows of two layers), checked on one random input."""
        first = modules[0]
        weight = torch.cat([m.weight_int4 for m in modules])
        scales = torch.cat([m.scales_and_zeros for m in modules], dim=1)  # [groups, out, 2]
        bias = _fused_bias(modules, scales.dtype, scales.device)
        x = torch.randn(2, first.in_features, generator=torch.Generator().manual_seed(0)).to(scales)
        try:
            fused = weight_only_linear(first.kind, x, weight, scales, bias)
        except RuntimeError:
            return None
        separate = torch.cat([m(x) for m in modules], dim=-1)
        if fused.shape != separate.shape or not torch.allclose(fused.float(), separate.float(), rtol=1e-2, atol=1e-2):
            return None
        return cls(first.kind, (weight, scales, bias), [m.out_features for m in modules], first.in_features)

    def slice_of(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Slice `index` of the group's output for x. The first slice asked for x runs the matmul; the others
        asked for the same tensor take theirs from it; once every slice was served nothing is kept."""
        if len(self.bounds) == 1:
            return project((self.kind,), self.tensors, x)
        if not (x is self._input and index in self._unserved):
            self._input, self._output = x, project((self.kind,), self.tensors, x)
            self._unserved = set(range(len(self.bounds)))
        start, end = self.bounds[index]
        output = self._output[..., start:end]
        self._unserved.discard(index)
        if not self._unserved:
            self._input = self._output = None
        return output


def _whole_group(slices: list[nn.Module]) -> bool:
    group = slices[0].group
    return all(s.group is group for s in slices) and [s.index for s in slices] == list(range(len(group.bounds)))


class PackedSlice(nn.Module):
    """In place of one nn.Linear whose weight went into a PackedGroup: what transformers' forward calls."""

    def __init__(self, group: PackedGroup, index: int):
        super().__init__()
        self.group, self.index = group, index
        start, end = group.bounds[index]
        self.in_features, self.out_features = group.in_features, end - start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.group.slice_of(self.index, x)

    def extra_repr(self) -> str:
        packing = "packed for oneDNN (bf16)" if self.group.kind == ("packed",) else f"fused {self.group.kind[0]}"
        return f"in_features={self.in_features}, out_features={self.out_features}, {packing}"
