"""The lean decoder's KV cache: one row per running sequence, each holding its positions from 0 up."""

from __future__ import annotations

import torch

LENGTH_STEP = 256  # the cache grows by this many positions at a time
ROW_STEP = 4


class RowCache:
    """Keys and values per layer as [rows, kv_heads, positions, head_dim]; row r holds sequence r."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device, max_length: int):
        self.shape = (kv_heads, head_dim)
        self.layers, self.dtype, self.device, self.max_length = layers, dtype, device, max_length
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.lengths: list[int] = []  # real tokens per row
        self.row_capacity = self.length_capacity = 0
        self.length_floor = 0  # reserve at least this many positions (static shapes: fewer regrowths)
        self.static_addresses = False  # tell torch.compile the tensors stay put (CUDA graphs update them in place)

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @torch.inference_mode()
    def reserve(self, rows: int, length: int) -> None:
        """Room for `rows` rows of `length` positions; grows (copying what is held) only when needed."""
        if rows <= self.row_capacity and length <= self.length_capacity:
            return
        new_rows = max(self.row_capacity, -(-rows // ROW_STEP) * ROW_STEP)
        new_length = max(self.length_capacity, min(self.max_length, -(-length // LENGTH_STEP) * LENGTH_STEP))
        new_length = max(new_length, length, self.length_floor)
        heads, dim = self.shape
        used_rows, used_length = self.rows, max(self.lengths, default=0)
        for store in (self.keys, self.values):
            for index in range(self.layers):
                # zeros, not empty: masked positions must hold finite numbers (0 x NaN is NaN)
                grown = torch.zeros(new_rows, heads, new_length, dim, dtype=self.dtype, device=self.device)
                if self.static_addresses:
                    torch._dynamo.mark_static_address(grown)
                if store and used_rows:
                    grown[:used_rows, :, :used_length] = store[index][:used_rows, :, :used_length]
                if index < len(store):
                    store[index] = grown
                else:
                    store.append(grown)
        self.row_capacity, self.length_capacity = new_rows, new_length

    @torch.inference_mode()
    def remove(self, rows: list[int]) -> list[int]:
        """Drop rows; the last rows move into the holes. Returns the new order as indices of the old rows."""
        order = list(range(self.rows))
        doomed = set(rows)
        used_length = max(self.lengths, default=0)
        keep = [r for r in order if r not in doomed]
        count = len(keep)
        moves = []  # (source, destination)
        holes = sorted(r for r in doomed if r < count)
        movers = [r for r in keep if r >= count]
        for hole, mover in zip(holes, movers):
            moves.append((mover, hole))
            order[hole] = mover
        if moves:
            sources = torch.tensor([s for s, _ in moves], device=self.device)
            targets = torch.tensor([t for _, t in moves], device=self.device)
            for store in (self.keys, self.values):
                for tensor in store:
                    tensor[targets, :, :used_length] = tensor[sources, :, :used_length]
        self.lengths = [self.lengths[r] for r in order[:count]]
        return order[:count]

    def release(self) -> None:
        """Forget every row and free the memory (after the batch empties, or out of memory)."""
        self.lengths = []
        self.keys, self.values = [], []
        self.row_capacity = self.length_capacity = 0

    def tokens(self) -> int:
        return sum(self.lengths)

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)
