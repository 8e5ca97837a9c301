"""A lean forward pass for Llama-family decoders, with a KV cache that has one row per running sequence.

Transformers' forward pass is general: it builds masks, walks cache objects and passes keyword arguments
through every layer. For the families whose layers are plain "RMSNorm, rotary attention, gated MLP"
(Llama, Mistral without a sliding window, Qwen2) this module runs the same weights with none of that: the
query/key/value and the gate/up projections are fused into one matmul each (engine/projections.py), and
decoding one token for every running sequence is a handful of tensor operations per layer.

The cache (engine/row_cache.py) keeps sequence r's keys and values in row r from position 0, so sequences
of different lengths share one batch with no left padding: each decode step writes every row's new key at
that row's own position, and attention masks out the positions a row has not reached.

Compiling (torch.compile) the decode step fuses the small operations between the matmuls:
- on a CPU, the step for a group of up to COMPILE_GROUP layers is compiled once and serves every group
  (the weights are arguments), with dynamic shapes; that takes 10-40 s on two cores, so it runs in a
  background thread while the uncompiled step serves, and replaces it when ready;
- on a GPU, the whole step is compiled with static shapes (the batch padded to a power of two, attention
  over the whole cache) and replayed as CUDA graphs ("reduce-overhead"), captured before the first request.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from engine.forward.projections import Projection, project
from engine.forward.row_cache import RowCache

SUPPORTED_TYPES = frozenset({"llama", "mistral", "qwen2"})
COMPILE_GROUP = 8  # most layers per compiled call (measured, SmolLM2 int8, one row: 1 layer 131 tok/s, 6: 152, 15: 158; compile 12 s, 20 s, 46 s)
STATIC_LENGTH = 4096  # positions reserved at once with static shapes (a regrowth means capturing again)


def unsupported_reason(model) -> str | None:
    """Why the lean path cannot run this model (None when it can); such models use transformers' forward."""
    config = model.config
    if config.model_type not in SUPPORTED_TYPES:
        return f"architecture '{config.model_type}' has no lean decoder"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return "sliding-window attention"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation '{config.hidden_act}'"
    if getattr(config, "pretraining_tp", 1) != 1:
        return "tensor-parallel slicing"
    rope = getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) == "dynamic":
        return "dynamic rotary scaling"
    return None


class LayerShape(NamedTuple):
    """What every layer shares: constants for the step function (one compiled graph serves all layers)."""

    q_heads: int
    kv_heads: int
    head_dim: int
    eps: float
    scaling: float
    qkv: tuple
    qkv_sizes: tuple[int, ...]
    out: tuple
    gate_up: tuple
    gate_up_sizes: tuple[int, ...]
    down: tuple


class _Layer:
    def __init__(self, layer: nn.Module, pack: bool):
        attention, mlp = layer.self_attn, layer.mlp

        def projection(owner: nn.Module, names: list[str]) -> Projection:
            return Projection([getattr(owner, name) for name in names], [(owner, name) for name in names], pack)

        self.qkv = projection(attention, ["q_proj", "k_proj", "v_proj"])
        self.out = projection(attention, ["o_proj"])
        self.gate_up = projection(mlp, ["gate_proj", "up_proj"])
        self.down = projection(mlp, ["down_proj"])
        self.eps = layer.input_layernorm.variance_epsilon
        self.scaling = attention.scaling
        # The step function's `weights` argument.
        self.weights = (layer.input_layernorm.weight, layer.post_attention_layernorm.weight,
                        self.qkv.tensors, self.out.tensors, self.gate_up.tensors, self.down.tensors)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As transformers' LlamaRMSNorm: normalise in float32 (rms_norm upcasts a bf16/fp16 input itself and returns
    # the input's dtype), scale in the model's dtype.
    return weight * F.rms_norm(x, (x.shape[-1],), eps=eps)


def _signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated: rotating x is then x * cos + roll(x, half) * signed sin, which is
    transformers' x * cos + rotate_half(x) * sin, rounded alike, with four operations instead of seven.
    (torch.addcmul would save one more but rounds once where transformers rounds twice: in bf16 the lean
    decoder's perplexity then moved by +0.9 % over 300 tokens, where this form gives transformers' figure.)"""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def _decode_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None,
                      scale: float) -> torch.Tensor:
    """One query per row: q [rows, q_heads, dim] against keys/values [rows, kv_heads, positions, dim]; `mask`
    is added to the scores (-inf where a row has not reached a position), built once per step.

    The query heads that share a key/value head go in as that head's "queries", so no key is repeated and
    the kernel sees one small matmul per key/value head. On a CPU this is 5x faster in bf16 than
    `enable_gqa` (measured for 8 rows of SmolLM2: 54 us against 267 us per layer). An additive mask in the
    model's dtype is faster than a boolean one (8 rows, bf16, two threads: 1.25x; fp32 1.2x)."""
    rows, q_heads, dim = q.shape
    grouped = q.view(rows, keys.shape[1], q_heads // keys.shape[1], dim)
    return F.scaled_dot_product_attention(grouped, keys, values, attn_mask=mask, scale=scale).view(rows, q_heads, dim)


def decode_layer(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, slots: torch.Tensor,
                 masked: torch.Tensor | None, keys: torch.Tensor, values: torch.Tensor, weights: tuple,
                 shape: LayerShape, rows: int, longest: int) -> torch.Tensor:
    """One layer for one new token per row: x [rows, hidden]; `sin` is signed (_signed_sin); writes each row's
    key and value at its position: `slots` [rows * kv_heads] are their rows in the cache seen as
    [-1, head_dim] (every layer's cache has one shape, so one index per step serves them all)."""
    input_norm, post_norm, qkv, out, gate_up, down = weights
    h = _rms_norm(x, input_norm, shape.eps)
    projected = project(shape.qkv, qkv, h)
    # the queries and keys lie side by side: one rotation for both
    q_and_k_heads = shape.q_heads + shape.kv_heads
    width = q_and_k_heads * shape.head_dim
    q_and_k = _rotate(projected[:, :width].view(rows, q_and_k_heads, shape.head_dim), cos, sin)
    q, k = q_and_k[:, :shape.q_heads], q_and_k[:, shape.q_heads:]
    v = projected[:, width:]
    keys.view(-1, shape.head_dim).index_copy_(0, slots, k.reshape(-1, shape.head_dim))
    values.view(-1, shape.head_dim).index_copy_(0, slots, v.reshape(-1, shape.head_dim))
    attended = _decode_attention(q, keys[:rows, :, :longest], values[:rows, :, :longest], masked, shape.scaling)
    x = x + project(shape.out, out, attended.reshape(rows, -1))
    h = _rms_norm(x, post_norm, shape.eps)
    gate, up = project(shape.gate_up, gate_up, h).split(shape.gate_up_sizes, dim=-1)
    return x + project(shape.down, down, F.silu(gate) * up)


def decode_all_layers(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, slots: torch.Tensor,
                      masked: torch.Tensor | None, all_keys: list[torch.Tensor], all_values: list[torch.Tensor],
                      all_weights: list[tuple], shape: LayerShape, rows: int, longest: int) -> torch.Tensor:
    """Every layer in one function: the unit that is compiled whole for CUDA graphs."""
    for keys, values, weights in zip(all_keys, all_values, all_weights):
        x = decode_layer(x, cos, sin, slots, masked, keys, values, weights, shape, rows, longest)
    return x


class LeanDecoder:
    """Runs a supported model's weights directly; `prefill` adds rows, `decode` advances every row by one token."""

    def __init__(self, model: nn.Module, static_shapes: bool = False, pack: bool = True):
        """`static_shapes` pads the batch to a power of two and attends over the whole cache, so that each
        batch size is one fixed-shape graph (what CUDA graphs need); `compile` turns it on for a GPU.
        `pack`: pack bf16 CPU weights for oneDNN (engine/forward/projections.py); torch.compile cannot take
        packed weights, so a decoder that will be compiled leaves them plain."""
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"No lean decoder: {reason}")
        config = model.config
        body = model.model
        self.embed = body.embed_tokens
        self.rotary = body.rotary_emb
        self.layers = [_Layer(layer, pack) for layer in body.layers]
        self.final_norm, self.final_eps = body.norm.weight, body.norm.variance_epsilon
        # A tied head's weight is the embedding table, which the lookup reads: it stays plain.
        tied = getattr(model.lm_head, "weight", None) is getattr(self.embed, "weight", False)
        self.head = Projection([model.lm_head], [(model, "lm_head")], pack and not tied)
        self.packed = any(kind == ("packed",) for layer in self.layers for kind in layer.qkv.layout)
        first = self.layers[0]
        self.shape = LayerShape(
            q_heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
            head_dim=body.layers[0].self_attn.head_dim, eps=first.eps, scaling=first.scaling,
            qkv=first.qkv.layout, qkv_sizes=first.qkv.sizes, out=first.out.layout,
            gate_up=first.gate_up.layout, gate_up_sizes=first.gate_up.sizes, down=first.down.layout,
        )
        if any(layer.qkv.layout != first.qkv.layout or layer.down.layout != first.down.layout for layer in self.layers):
            raise ValueError("No lean decoder: layers of different kinds")
        self.dtype = self.final_norm.dtype
        self.device = self.final_norm.device
        self.max_length = int(getattr(config, "max_position_embeddings", 0) or 2048)
        self.static_shapes = static_shapes
        self.cache = self._new_cache()
        self.compiled = False
        self.compiling = False
        self._layer_step: Callable = decode_layer  # replaced by the compiled group step on a CPU
        self._weights = [layer.weights for layer in self.layers]
        self.group_size = _group_size(len(self.layers), COMPILE_GROUP)
        self._all_layers_step: Callable | None = None  # the compiled whole step on a GPU

    def _new_cache(self) -> RowCache:
        cache = RowCache(len(self.layers), self.shape.kv_heads, self.shape.head_dim, self.dtype, self.device,
                         self.max_length)
        if self.static_shapes:
            cache.length_floor = min(self.max_length, STATIC_LENGTH)
        return cache

    def _positions(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dummy = torch.empty(0, dtype=self.dtype, device=self.device)
        return self.rotary(dummy, positions)

    # --- forward passes ------------------------------------------------------------------------------------
    def prefill(self, token_lists: list[list[int]]) -> torch.Tensor:
        """Run new sequences from position 0 (right-padded into one pass), store their keys and values in new
        rows at the end of the cache, and return each one's next-token logits [len(token_lists), vocab]."""
        return self._prefill(self.cache, token_lists)

    def decode(self, token_ids: list[int]) -> torch.Tensor:
        """Feed each row its latest token; returns next-token logits [rows, vocab]."""
        return self._decode(self.cache, token_ids, self._layer_step, self._all_layers_step)

    @torch.inference_mode()
    def _prefill(self, cache: RowCache, token_lists: list[list[int]]) -> torch.Tensor:
        shape = self.shape
        count, width = len(token_lists), max(len(tokens) for tokens in token_lists)
        ids = torch.zeros(count, width, dtype=torch.long)
        for row, tokens in enumerate(token_lists):
            ids[row, :len(tokens)] = torch.tensor(tokens)
        ids = ids.to(self.device)
        first = cache.rows
        cache.reserve(first + count, width + 1)
        x = self.embed(ids).to(self.dtype)
        cos, sin = self._positions(torch.arange(width, device=self.device)[None])
        cos, sin = cos[:, None], _signed_sin(sin[:, None])  # [1, 1, width, head_dim]: broadcast over rows and heads
        for layer, keys, values in zip(self.layers, cache.keys, cache.values):
            input_norm, post_norm = layer.weights[:2]
            h = _rms_norm(x, input_norm, shape.eps)
            q, k, v = layer.qkv(h).split(shape.qkv_sizes, dim=-1)
            q = _rotate(q.view(count, width, shape.q_heads, shape.head_dim).transpose(1, 2), cos, sin)
            k = _rotate(k.view(count, width, shape.kv_heads, shape.head_dim).transpose(1, 2), cos, sin)
            v = v.view(count, width, shape.kv_heads, shape.head_dim).transpose(1, 2)
            keys[first:first + count, :, :width] = k
            values[first:first + count, :, :width] = v
            # Right padding needs no mask beyond causality: a real token never looks at later (padded) ones.
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=shape.scaling,
                                                      enable_gqa=shape.q_heads != shape.kv_heads)
            x = x + layer.out(attended.transpose(1, 2).reshape(count, width, -1))
            h = _rms_norm(x, post_norm, shape.eps)
            gate, up = layer.gate_up(h).split(shape.gate_up_sizes, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        lengths = [len(tokens) for tokens in token_lists]
        cache.lengths.extend(lengths)
        last = x[torch.arange(count, device=self.device), torch.tensor(lengths, device=self.device) - 1]
        return self.head(_rms_norm(last, self.final_norm, self.final_eps))

    @torch.inference_mode()
    def _decode(self, cache: RowCache, token_ids: list[int], layer_step: Callable,
                all_layers_step: Callable | None) -> torch.Tensor:
        rows = cache.rows
        lengths = cache.lengths
        longest = max(lengths) + 1
        if self.static_shapes:  # pad the batch to a power of two and attend over the whole cache
            batch = 1 << (rows - 1).bit_length()
            cache.reserve(batch, longest)
            longest = cache.length_capacity
            lengths, token_ids = lengths + [0] * (batch - rows), token_ids + [0] * (batch - rows)
        else:
            batch = rows
            # One position to spare: a slice that is the whole cache would make compiled code specialise.
            cache.reserve(rows, longest + 1)
        position = torch.tensor(lengths, device=self.device)
        x = self.embed(torch.tensor(token_ids, device=self.device)).to(self.dtype)  # [batch, hidden]
        cos, sin = self._positions(position[:, None])
        cos, sin = cos.view(batch, 1, -1), _signed_sin(sin.view(batch, 1, -1))  # [batch, 1 (heads), head_dim]
        heads = self.shape.kv_heads
        slots = ((torch.arange(batch * heads, device=self.device) * cache.length_capacity)
                 + position.repeat_interleave(heads))  # row r, head h at position p: (r * heads + h) * capacity + p
        # Rows of one length need no mask; compiled steps always take one (one graph fewer to compile).
        masked = None
        if self.static_shapes or layer_step is not decode_layer or min(lengths) + 1 != longest:
            unreached = (torch.arange(longest, device=self.device)[None] > position[:, None]).view(batch, 1, 1, longest)
            masked = torch.zeros(unreached.shape, dtype=self.dtype, device=self.device).masked_fill_(unreached, float("-inf"))
        if all_layers_step is not None:
            x = all_layers_step(x, cos, sin, slots, masked, cache.keys, cache.values, self._weights,
                                self.shape, batch, longest)
        elif layer_step is not decode_layer:  # compiled for a group of layers: one call per group
            size = self.group_size
            for start in range(0, len(self.layers), size):
                x = layer_step(x, cos, sin, slots, masked, cache.keys[start:start + size],
                               cache.values[start:start + size], self._weights[start:start + size],
                               self.shape, batch, longest)
        else:
            for layer, keys, values in zip(self.layers, cache.keys, cache.values):
                x = layer_step(x, cos, sin, slots, masked, keys, values, layer.weights, self.shape, batch, longest)
        cache.lengths = [length + 1 for length in cache.lengths]
        return self.head(_rms_norm(x[:rows], self.final_norm, self.final_eps))

    # --- compiling -----------------------------------------------------------------------------------------
    def compile_on_gpu(self, max_rows: int) -> float:
        """Compile the whole step with static shapes and capture CUDA graphs for every power-of-two batch up
        to `max_rows`, now (blocking, in the thread that will decode). Returns the seconds it took."""
        started = time.perf_counter()
        _raise_recompile_limit()
        for tensor in self._all_tensors():
            torch._dynamo.mark_static_address(tensor)
        self.cache.static_addresses = True
        step = torch.compile(decode_all_layers, mode="reduce-overhead", dynamic=False)
        for power in range(max(1, max_rows - 1).bit_length() + 1):
            self._exercise(self.cache, decode_layer, step, rows=2 ** power)
        self._all_layers_step = step
        self.compiled = True
        return time.perf_counter() - started

    def compile_in_background(self, done: Callable[[str | None, float], None]) -> None:
        """Compile the step for a group of layers in a background thread while the uncompiled step serves;
        swap it in when it is ready. `done(error or None, seconds)` is called from that thread."""
        self.compiling = True

        def work() -> None:
            started = time.perf_counter()
            _lowest_priority()  # serving comes first; the C++ compiler processes it starts inherit this
            error = None
            try:
                _raise_recompile_limit()
                step = torch.compile(decode_all_layers, dynamic=True)
                scratch = self._new_cache()  # its own rows: the loop keeps using self.cache meanwhile
                for rows in (1, 5):  # a batch of one has a graph of its own
                    self._exercise(scratch, step, None, rows)
                self._layer_step = step
                self.compiled = True
            except Exception as failure:  # no C++ compiler, an unsupported operation...
                error = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
            finally:
                self.compiling = False
                _BACKGROUND_COMPILES.discard(threading.current_thread())
            done(error, time.perf_counter() - started)

        thread = threading.Thread(target=work, name="llm-console-compile", daemon=True)
        _BACKGROUND_COMPILES.add(thread)
        thread.start()

    def _exercise(self, cache: RowCache, layer_step: Callable, all_layers_step: Callable | None, rows: int) -> None:
        """Prefill and decode `rows` rows of different lengths on `cache`, then empty it. The lengths equal
        no other size: torch.compile would otherwise assume that equality ("duck sizing") and compile again."""
        self._prefill(cache, [[0] * (10 + row) for row in range(rows)])
        self._decode(cache, [0] * rows, layer_step, all_layers_step)
        cache.lengths = []

    def _all_tensors(self) -> list[torch.Tensor]:
        tensors = []
        for weights in self._weights:
            norms, projections = weights[:2], weights[2:]
            tensors += list(norms) + [t for group in projections for t in group if t is not None]
        return tensors

    def empty(self) -> None:
        """Forget every row. The memory is freed, except with static shapes: captured graphs point at it."""
        if self.static_shapes:
            self.cache.lengths = []
        else:
            self.cache.release()


_BACKGROUND_COMPILES: set[threading.Thread] = set()


def _lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux: niceness is per thread and inherited)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: compile at normal priority
        pass


def wait_for_background_compiles(timeout: float) -> None:
    """Let compiles in flight finish: a process that exits in the middle of one aborts in torch's C++ code."""
    deadline = time.monotonic() + timeout
    for thread in list(_BACKGROUND_COMPILES):
        thread.join(max(0.0, deadline - time.monotonic()))


def _group_size(layers: int, most: int) -> int:
    """The largest divisor of `layers` up to `most`: every group then shares one compiled graph."""
    return max(size for size in range(1, min(layers, most) + 1) if layers % size == 0)


def _raise_recompile_limit() -> None:
    """Each model layout (precision, architecture) is its own graph of the same function: allow many."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), 64))
