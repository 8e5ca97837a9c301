"""How one request is sampled: the parameters a caller sets, checked before the request is queued.

The torch side (picking a token from logits) is in engine/sampling.py; this module imports no torch, so the
scheduler's policy can read a request's settings without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import InvalidRequest

# Below this a temperature only sharpens the distribution onto its top token, and dividing logits by it
# overflows float32 (1e-300 rounds to 0): it is greedy decoding, so it is treated as such.
GREEDY_BELOW_TEMPERATURE = 1e-5
MAX_SEED = 2**64 - 1  # what torch.Generator.manual_seed takes


@dataclass(frozen=True)
class SamplingParams:
    """How one request is sampled. A temperature of 0 (or below GREEDY_BELOW_TEMPERATURE) means greedy decoding."""

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
        return self.temperature < GREEDY_BELOW_TEMPERATURE
