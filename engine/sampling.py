"""Picking the next token from logits: per-request generators, the repetition penalty, temperature, top-k, top-p.

The parameters themselves are in engine/sampling_params.py (re-exported here).
"""

from __future__ import annotations

import torch

from engine.errors import SamplingFailed
from engine.sampling_params import SamplingParams

__all__ = ["SamplingParams", "apply_repetition_penalty", "make_generator", "needs_seen_ids", "sample_next_token"]


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
    # NaN scores are never picked and +inf ones (a float16 overflow) become the largest float, so the
    # softmax below stays finite; a row without a single usable score is refused below.
    logits = torch.nan_to_num(logits / params.temperature, nan=float("-inf"), posinf=torch.finfo(logits.dtype).max)
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
    if not bool(torch.isfinite(probabilities).all()):
        raise SamplingFailed(
            "The model gave no usable scores for the next token (NaN), so this request was stopped. "
            "Try another precision (fp32 or bf16) or another model."
        )
    return int(torch.multinomial(probabilities, 1, generator=generator))
