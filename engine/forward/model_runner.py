"""Forward passes: prefill new sequences together, then decode one token for every running sequence at once.

Llama-family models run on the lean decoder (engine/lean_decoder.py: fused projections, one cache row per
sequence); on a 2-core CPU it decodes 1.6x (one stream) to 1.7x (eight) as fast as transformers' forward.
Other architectures run transformers' forward over a left-padded shared cache (engine/batch.py), and models
whose cache cannot be merged (sliding-window or recurrent layers) decode one sequence at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
from transformers import DynamicCache

from engine.forward.batch import RunningBatch, cache_is_batchable
from engine.forward.lean_decoder import LeanDecoder, unsupported_reason
from engine.weights.loader import LoadedModel
from engine.sampling import needs_seen_ids, sample_next_token
from engine.sequence import Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowFailed:
    """In place of a next token: this row's sampling raised. Its request ends alone; the other rows go on."""

    error: Exception


class ModelRunner:
    def __init__(self, loaded: LoadedModel, lean: bool = True, compile: bool = False, warm_up_rows: int = 8,
                 notify: Callable[[str], None] = lambda _message: None):
        """`compile`: torch.compile the lean decoder's step. On a GPU that happens here, before any request
        (CUDA graphs for every batch size up to `warm_up_rows`); on a CPU in the background while the
        uncompiled step serves. `notify` receives messages for the user (compiled, or why not)."""
        self.loaded = loaded
        self.model = loaded.model
        self.device = loaded.device
        self.pad_id = loaded.tokenizer.pad_token_id or 0
        self.batch = RunningBatch()
        self.notify = notify
        self.retired = False  # set when the model is replaced
        self.lean = self._lean_decoder(static_shapes=compile and self.device.type == "cuda", pack=not compile) if lean else None
        if self.lean is not None and compile:
            self._compile(warm_up_rows)
        probe = DynamicCache(config=self.model.config)
        # Can this model's cache be padded and merged? (sliding-window or recurrent layers cannot)
        self.batched = self.lean is not None or cache_is_batchable(probe)

    def _lean_decoder(self, static_shapes: bool, pack: bool = True) -> LeanDecoder | None:
        if unsupported_reason(self.model) is not None:
            return None
        try:
            return LeanDecoder(self.model, static_shapes=static_shapes, pack=pack)
        except ValueError as error:  # an unusual layer: transformers' forward runs it
            log.info("no lean decoder: %s", error)
            return None

    def _compile(self, warm_up_rows: int) -> None:
        if not self.lean.static_shapes:
            self.lean.compile_in_background(self._compiled_in_background)
            return
        try:
            seconds = self.lean.compile_on_gpu(warm_up_rows)
        except Exception as error:  # an unsupported operation, out of memory...
            log.exception("compiling the decode step failed")
            self.notify(f"Compiling the decode step failed, so it runs uncompiled: {error}".splitlines()[0])
            self.lean = self._lean_decoder(static_shapes=False)
            return
        self.notify(f"Decode step compiled and captured as CUDA graphs for batches up to {warm_up_rows} "
                    f"in {seconds:.0f} s.")

    def _compiled_in_background(self, error: str | None, seconds: float) -> None:
        if self.retired:
            return
        if error is None:
            self.notify(f"Decode step compiled in {seconds:.0f} s (torch.compile); it now serves every request.")
        else:
            log.error("compiling the decode step failed: %s", error)
            self.notify(f"Compiling the decode step failed, so it runs uncompiled: {error}")

    @property
    def decoder(self) -> str:
        """Which forward pass runs: shown with the engine's figures."""
        if self.lean is not None:
            if self.lean.compiling:
                return "lean, compiling"
            if self.lean.compiled:
                return "lean, compiled" + (" (CUDA graphs)" if self.lean.static_shapes else "")
            return "lean, bf16 packed for oneDNN" if self.lean.packed else "lean"
        return "transformers (batched)" if self.batched else "transformers (one sequence at a time)"

    @torch.inference_mode()
    def prefill(self, sequences: list[Sequence]) -> list[int | RowFailed]:
        """Run the prompts (and tokens generated before a preemption) of new sequences, padded into one
        forward pass, add them to the running batch, and return each one's next token (or RowFailed)."""
        if not self.batched:
            return [self._prefill_alone(s) for s in sequences]
        token_lists = [s.prompt_ids + s.generated for s in sequences]
        if self.lean is not None:
            logits = self.lean.prefill(token_lists)
            for sequence, tokens in zip(sequences, token_lists):
                sequence.cache_length = len(tokens)
            self.batch.sequences.extend(sequences)
            return self._sample_rows(sequences, logits)
        width = max(len(tokens) for tokens in token_lists)
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, tokens in enumerate(token_lists):
            input_ids[row, width - len(tokens):] = torch.tensor(tokens)
            attention_mask[row, width - len(tokens):] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            cache=DynamicCache(config=self.model.config),
            use_cache=True,
            logits_to_keep=1,
        )
        for sequence, tokens in zip(sequences, token_lists):
            sequence.cache_length = len(tokens)
        next_ids = self._sample_rows(sequences, output.logits[:, -1])
        self.batch.add(sequences, output.cache, attention_mask)
        return next_ids

    def _prefill_alone(self, sequence: Sequence) -> int | RowFailed:
        tokens = sequence.prompt_ids + sequence.generated
        output = self.model(input_ids=torch.tensor([tokens], device=self.device),
                            cache=DynamicCache(config=self.model.config), use_cache=True, logits_to_keep=1)
        sequence.cache = output.cache
        sequence.cache_length = len(tokens)
        self.batch.sequences.append(sequence)
        return self._sample(sequence, output.logits[0, -1])

    def keep(self, sequences: list[Sequence]) -> None:
        """Keep only these running sequences (`running` then lists them in the order of the batch's rows)."""
        if self.lean is not None:
            self._keep_lean(sequences)
        elif self.batched:
            self.batch.keep(sequences)
        else:
            self.batch.sequences = list(sequences)

    def _keep_lean(self, sequences: list[Sequence]) -> None:
        rows = self.batch.sequences
        if not sequences:
            self.batch.sequences = []
            self.lean.empty()  # an idle engine holds no cache memory (except for captured CUDA graphs)
            return
        kept = set(map(id, sequences))
        gone = [row for row, sequence in enumerate(rows) if id(sequence) not in kept]
        if gone:
            self.batch.sequences = [rows[row] for row in self.lean.cache.remove(gone)]

    @property
    def running(self) -> list[Sequence]:
        return self.batch.sequences

    @torch.inference_mode()
    def decode(self) -> list[int | RowFailed]:
        """One decode step for all running sequences; returns each one's next token (or RowFailed), in the
        order of `running`."""
        sequences = self.batch.sequences
        if not self.batched:
            return [self._decode_alone(s) for s in sequences]
        if self.lean is not None:
            logits = self.lean.decode([s.generated[-1] for s in sequences])
            for sequence in sequences:
                sequence.cache_length += 1
            return self._sample_rows(sequences, logits)
        input_ids, attention_mask, positions = self.batch.decode_inputs(self.device)
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            cache=self.batch.cache,
            use_cache=True,
        )
        self.batch.cache = output.cache
        for sequence in sequences:
            sequence.cache_length += 1
        return self._sample_rows(sequences, output.logits[:, -1])

    def _decode_alone(self, sequence: Sequence) -> int | RowFailed:
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
        if self.lean is not None:
            return self.lean.cache.tokens()
        if self.batched:
            return self.batch.kv_tokens()
        return sum(s.cache_length for s in self.batch.sequences)

    def _sample(self, sequence: Sequence, logits: torch.Tensor) -> int | RowFailed:
        try:
            seen = sequence.seen_ids(self.device) if needs_seen_ids(sequence.params) else None
            return sample_next_token(logits, sequence.params, seen, sequence.generator)
        except torch.OutOfMemoryError:  # the batch's problem, not this row's: the loop backs off
            raise
        except Exception as error:  # one request's sampling must not fail the batch's other rows
            log.exception("sampling request %d failed", sequence.handle.request_id)
            return RowFailed(error)

    def _sample_rows(self, sequences: list[Sequence], logits: torch.Tensor) -> list[int | RowFailed]:
        """Greedy rows without a penalty take one batched argmax; the others are sampled row by row."""
        plain = [s.params.greedy and not needs_seen_ids(s.params) for s in sequences]
        argmax = logits.float().argmax(dim=-1).tolist() if any(plain) else None  # bf16 argmax is 5x slower on CPU
        return [argmax[row] if plain[row] else self._sample(s, logits[row]) for row, s in enumerate(sequences)]
