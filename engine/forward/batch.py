"""The running batch: one left-padded KV cache shared by all running sequences.

Sequences are prefilled on their own, then merged into the batch (padding the shorter side on the left);
finished ones are filtered out and columns that became padding for every row are trimmed. This is the
design of text-generation-inference's CausalLMBatch: copies happen only when the batch's membership
changes, and each decode step is one forward pass for all running requests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from engine.sequence import Sequence


def cache_is_batchable(cache: DynamicCache) -> bool:
    """Only plain full-attention layers can be padded and merged; other caches decode one sequence at a time."""
    return all(type(layer) is DynamicLayer for layer in cache.layers)


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    padding = [0, 0] * (tensor.dim() - 1 - (dim % tensor.dim())) + [missing, 0]
    return F.pad(tensor, padding)


class RunningBatch:
    def __init__(self) -> None:
        self.sequences: list[Sequence] = []
        self.cache: DynamicCache | None = None
        self.attention_mask: torch.Tensor | None = None  # [batch, columns], 1 where a real token sits
        self.padded = False  # any padding column? Without padding the model needs no mask (faster attention)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def columns(self) -> int:
        return 0 if self.attention_mask is None else self.attention_mask.shape[1]

    def add(self, sequences: list[Sequence], cache: DynamicCache, attention_mask: torch.Tensor) -> None:
        """Merge freshly prefilled sequences (their own left-padded cache and mask) into the batch."""
        if not self.sequences:
            self.sequences, self.cache, self.attention_mask = list(sequences), cache, attention_mask
            self.padded = not bool(attention_mask.all())
            return
        columns = max(self.columns, attention_mask.shape[1])
        for layer, new_layer in zip(self.cache.layers, cache.layers):
            layer.keys = torch.cat([_left_pad(layer.keys, columns, -2), _left_pad(new_layer.keys, columns, -2)])
            layer.values = torch.cat([_left_pad(layer.values, columns, -2), _left_pad(new_layer.values, columns, -2)])
        self.attention_mask = torch.cat([_left_pad(self.attention_mask, columns, 1), _left_pad(attention_mask, columns, 1)])
        self.sequences.extend(sequences)
        self.padded = not bool(self.attention_mask.all())

    def keep(self, keep: list[Sequence]) -> None:
        """Drop every sequence not in `keep`, and the columns that are padding for all that remain."""
        if len(keep) == len(self.sequences):
            return
        if not keep:
            self.sequences, self.cache, self.attention_mask = [], None, None
            return
        rows = torch.tensor([self.sequences.index(s) for s in keep], device=self.attention_mask.device)
        mask = self.attention_mask.index_select(0, rows)
        first = int(mask.any(dim=0).nonzero()[0])
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, rows)[..., first:, :]
            layer.values = layer.values.index_select(0, rows)[..., first:, :]
        self.attention_mask = mask[:, first:]
        self.sequences = list(keep)
        self.padded = not bool(self.attention_mask.all())

    def decode_inputs(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """input ids [batch, 1], the attention mask grown by one column, and each row's next position;
        mask and positions are None when no row is padded (the model then derives them from the cache)."""
        input_ids = torch.tensor([[s.generated[-1]] for s in self.sequences], device=device)
        ones = torch.ones(len(self.sequences), 1, dtype=self.attention_mask.dtype, device=device)
        self.attention_mask = torch.cat([self.attention_mask, ones], dim=1)
        if not self.padded:
            return input_ids, None, None
        positions = torch.tensor([[s.cache_length] for s in self.sequences], device=device)
        return input_ids, self.attention_mask, positions

    def kv_tokens(self) -> int:
        return len(self.sequences) * self.columns
