"""Perplexity of the loaded model on a fixed text: how much a precision or quantization costs in quality."""

from __future__ import annotations

import math

import torch

from engine.weights.loader import LoadedModel

WINDOW_TOKENS = 256


@torch.inference_mode()
def perplexity(loaded: LoadedModel, text: str, window: int = WINDOW_TOKENS) -> float:
    """exp(mean negative log-likelihood) over non-overlapping windows of the text's tokens."""
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    window = min(window, loaded.info.context_length)
    total_nll, counted = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = torch.tensor([ids[start : start + window]], device=loaded.device)
        if chunk.shape[1] < 2:
            break
        logits = loaded.model(input_ids=chunk, use_cache=False).logits.float()
        log_probs = torch.log_softmax(logits[0, :-1], dim=-1)
        targets = chunk[0, 1:]
        total_nll -= float(log_probs.gather(-1, targets[:, None]).sum())
        counted += targets.numel()
    if counted == 0:
        raise ValueError("the text is too short to measure perplexity")
    return math.exp(total_nll / counted)
