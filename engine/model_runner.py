"""Forward passes: prefill a new sequence, decode one token for running sequences, sample the next ids."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from engine.loader import LoadedModel
from engine.sampling import sample_next_token
from engine.sequence import Sequence


class ModelRunner:
    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.model = loaded.model
        self.device = loaded.device

    @torch.inference_mode()
    def prefill(self, sequence: Sequence) -> int:
        """Run the prompt through the model, keep its KV cache, and return the first sampled token."""
        ids = torch.tensor([sequence.prompt_ids], device=self.device)
        output = self.model(input_ids=ids, cache=DynamicCache(config=self.model.config), use_cache=True, logits_to_keep=1)
        sequence.cache = output.cache
        return self._sample(sequence, output.logits[0, -1])

    @torch.inference_mode()
    def decode(self, sequences: list[Sequence]) -> list[int]:
        """One decode step for each running sequence; returns the next token of each."""
        next_ids = []
        for sequence in sequences:
            ids = torch.tensor([[sequence.generated[-1]]], device=self.device)
            output = self.model(input_ids=ids, cache=sequence.cache, use_cache=True)
            sequence.cache = output.cache
            next_ids.append(self._sample(sequence, output.logits[0, -1]))
        return next_ids

    def _sample(self, sequence: Sequence, logits: torch.Tensor) -> int:
        return sample_next_token(logits, sequence.params, sequence.seen_ids, sequence.generator)
