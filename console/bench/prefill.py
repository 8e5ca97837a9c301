"""The long-prompt case of `llm-console bench`: prefill speed and time to first token for prompts of a given
token count, the engine's and (in `llama_cpp_baseline.py`) llama.cpp's on the same text."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from engine import GenerationRequest, InferenceEngine, SamplingParams

# Plain prose, repeated until a prompt is long enough: no chat template, so both engines see the same text.
FILLER = (
    "The lighthouse stood at the end of a long spit of rock, and every evening its keeper climbed the hundred "
    "and twelve steps to light the lamp. Ships passing in the night counted its flashes to know where they were. "
    "In winter the storms came from the west, and the waves broke over the gallery rail; in summer the sea was "
    "calm and the keeper painted the iron railings, mended the nets of the fishermen and wrote long letters. "
)


@dataclass
class PrefillRun:
    prompt_tokens: int
    ttft_s: float
    prefill_tokens_per_s: float
    llama_cpp_prefill_tokens_per_s: float | None = None

    @property
    def ratio(self) -> float | None:
        if not self.llama_cpp_prefill_tokens_per_s:
            return None
        return self.prefill_tokens_per_s / self.llama_cpp_prefill_tokens_per_s


def prompt_of(tokenizer, tokens: int) -> str:
    """A text that the model's tokenizer turns into about `tokens` tokens."""
    text = FILLER
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < tokens:
        text += FILLER
    return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:tokens])


def prompts_for(engine: InferenceEngine, lengths: list[int]) -> dict[int, str]:
    tokenizer = engine.run_on_model(lambda loaded: loaded.tokenizer)
    return {length: prompt_of(tokenizer, length) for length in lengths}


def fitting_lengths(engine: InferenceEngine, lengths: list[int]) -> tuple[list[int], list[int]]:
    """(lengths that fit the loaded model's context with room to answer, lengths that do not)."""
    context = engine.model_info.context_length
    return [n for n in lengths if n + 8 < context], [n for n in lengths if n + 8 >= context]


def measure_engine_prefill(engine: InferenceEngine, prompts: dict[int, str], repeats: int = 2) -> list[PrefillRun]:
    """Per length: the median of `repeats` requests of one new token on an idle engine."""
    runs = []
    for length, text in prompts.items():
        ttfts, counted = [], length
        for _ in range(repeats):
            result = engine.generate(GenerationRequest(prompt=text, params=SamplingParams(
                temperature=0.0, max_new_tokens=1, ignore_eos=True)))
            if not result.ok:
                raise RuntimeError(f"the {length}-token prompt failed: {result.error}")
            ttfts.append(result.time_to_first_token_s)
            counted = result.prompt_tokens
        ttft = statistics.median(ttfts)
        runs.append(PrefillRun(counted, ttft, counted / ttft))
    return runs
