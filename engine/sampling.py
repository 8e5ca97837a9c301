"""Sampling parameters of one request and the function that picks the next token from logits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.errors import InvalidRequest

MAX_SEED = 2**64 - 1  # what torch.Generator.manual_seed takes


@dataclass(frozen=True)
class SamplingParams:
    """How one request is sampled. temperature 0 means greedy decoding."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repetition_penalty: float = 1.1
    max_new_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None
    ignore_eos: bool = False  # keep generating past end-of-text (benchmarks: a fixed number of tokens)

    def validate(self) -> None:
        problems = []
        if not 0.0 <= self.temperature <= 5.0:
            problems.append(f"temperature must be between 0 and 5 (got {self.temperature})")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top-p must be above 0 and at most 1 (got {self.top_p})")
        if self.top_k < 0:
            problems.append(f"top-k must be 0 (off) or more (got {self.top_k})")
        if not 0.5 <= self.repetition_penalty <= 3.0:
            problems.append(f"repetition penalty must be between 0.5 and 3 (got {self.repetition_penalty})")
        if self.max_new_tokens < 1:
            problems.append(f"max new tokens must be at least 1 (got {self.max_new_tokens})")
        if any(not s for s in self.stop):
            problems.append("stop strings must not be empty")
        if self.seed is not None and (isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED):
            problems.append(f"the seed must be a whole number from 0 to {MAX_SEED} (got {self.seed})")
        if problems:
            raise InvalidRequest("Invalid sampling settings: " + "; ".join(problems) + ".")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A per-request random generator, so a seeded request repeats whatever else runs beside it."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def apply_repetition_penalty(logits: torch.Tensor, seen_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty (as in Hugging Face): make tokens already in the context less likely."""
    if penalty == 1.0 or seen_ids.numel() == 0:
        return logits
    scores = logits.gather(-1, seen_ids)
    scores = torch.where(scores < 0, scores * penalty, scores / penalty)
    return logits.scatter(-1, seen_ids, scores)


def needs_seen_ids(params: SamplingParams) -> bool:
    return params.repetition_penalty != 1.0


def sample_next_token(
    logits: torch.Tensor,
    params: SamplingParams,
    seen_ids: torch.Tensor | None,
    generator: torch.Generator,
) -> int:
    """Pick the next token id from one row of logits (shape [vocab])."""
    logits = logits.float()
    if seen_ids is not None:
        logits = apply_repetition_penalty(logits, seen_ids, params.repetition_penalty)
    if params.greedy:
        return int(torch.argmax(logits))
    logits = logits / params.temperature
    if 0 < params.top_k < logits.shape[-1]:
        threshold = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, sorted_index = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop tokens once the mass before them already reaches top_p; the first token always stays.
        drop = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= params.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, sorted_index, sorted_logits)
    probabilities = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))
