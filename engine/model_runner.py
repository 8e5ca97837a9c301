"""Forward passes: prefill a new sequence, then decode one token for every running sequence at once."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from engine.batch import RunningBatch, cache_is_batchable
from engine.loader import LoadedModel
from engine.sampling import sample_next_token
from engine.sequence import Sequence


class ModelRunner:
    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.model = loaded.model
        self.device = loaded.device
        self.batch = RunningBatch()
        self.batched: bool | None = None  # decided by the first prefill: can this model's cache be merged?

    @torch.inference_mode()
    def prefill(self, sequence: Sequence) -> int:
        """Run the prompt (and any tokens generated before a preemption) and return the next token."""
        tokens = sequence.prompt_ids + sequence.generated
        ids = torch.tensor([tokens], device=self.device)
        cache = DynamicCache(config=self.model.config)
        output = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        sequence.cache = output.cache
        sequence.cache_length = len(tokens)
        if self.batched is None:
            self.batched = cache_is_batchable(sequence.cache)
        return self._sample(sequence, output.logits[0, -1])

    def add(self, sequence: Sequence) -> None:
        if self.batched:
            self.batch.add(sequence)
        else:
            self.batch.sequences.append(sequence)

    def keep(self, sequences: list[Sequence]) -> None:
        if self.batched:
            self.batch.keep(sequences)
        else:
            self.batch.sequences = list(sequences)

    @property
    def running(self) -> list[Sequence]:
        return self.batch.sequences

    @torch.inference_mode()
    def decode(self) -> list[int]:
        """One decode step for all running sequences; returns each one's next token."""
        sequences = self.batch.sequences
        if not self.batched:
            return [self._decode_alone(s) for s in sequences]
        input_ids, attention_mask, positions = self.batch.decode_inputs(self.device)
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            cache=self.batch.cache,
            use_cache=True,
        )
        self.batch.cache = output.cache
        logits = output.logits[:, -1]
        next_ids = []
        for row, sequence in enumerate(sequences):
            sequence.cache_length += 1
            next_ids.append(self._sample(sequence, logits[row]))
        return next_ids

    def _decode_alone(self, sequence: Sequence) -> int:
        ids = torch.tensor([[sequence.generated[-1]]], device=self.device)
        output = self.model(input_ids=ids, cache=sequence.cache, use_cache=True)
        sequence.cache = output.cache
        sequence.cache_length += 1
        return self._sample(sequence, output.logits[0, -1])

    def evict(self, sequences: list[Sequence]) -> None:
        """Forget the KV cache of sequences taken out of the batch (after out-of-memory)."""
        self.keep([s for s in self.batch.sequences if s not in sequences])
        for sequence in sequences:
            sequence.cache = None
            sequence.cache_length = 0

    def kv_tokens(self) -> int:
        if self.batched:
            return self.batch.kv_tokens()
        return sum(s.cache_length for s in self.batch.sequences)

    def _sample(self, sequence: Sequence, logits: torch.Tensor) -> int:
        return sample_next_token(logits, sequence.params, sequence.seen_ids, sequence.generator)
