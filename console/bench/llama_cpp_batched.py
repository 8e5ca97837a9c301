"""llama.cpp's batched decode through llama-cpp-python's low-level API: several sequences in one `llama_decode`,
as LM Studio's parallel predictions run it, and a long prompt prefilled in one call. Runs inside the baseline's
own process (`llama_cpp_baseline.py`), never beside the engine."""

from __future__ import annotations

import ctypes
import time

import numpy as np


class _Context:
    """One llama.cpp context for `sequences` sequences of up to `tokens_per_sequence` tokens each."""

    def __init__(self, llama_cpp, model, sequences: int, tokens_per_sequence: int, batch_tokens: int, threads: int):
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = sequences * tokens_per_sequence
        params.n_batch = max(batch_tokens, sequences)
        params.n_ubatch = min(512, params.n_batch)
        params.n_seq_max = sequences
        params.n_threads = params.n_threads_batch = threads
        self.api = llama_cpp
        self.ctx = _first(llama_cpp, "llama_init_from_model", "llama_new_context_with_model")(model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {sequences} sequences")
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, sequences)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """entries: (token, position, sequence, wants logits)."""
        batch = self.batch
        for i, (token, position, sequence, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = sequence
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        code = self.api.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")

    def logits(self, index: int, vocabulary: int) -> np.ndarray:
        pointer = self.api.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(vocabulary,))

    def close(self) -> None:
        self.api.llama_batch_free(self.batch)
        self.api.llama_free(self.ctx)


def _first(module, *names):
    """The first of `names` that this llama-cpp-python version has (its API was renamed over releases)."""
    for name in names:
        if hasattr(module, name):
            return getattr(module, name)
    raise RuntimeError(f"this llama-cpp-python has none of {', '.join(names)}")


def _vocabulary(llama_cpp, model) -> tuple[int, int]:
    """(vocabulary size, end-of-text token)."""
    if hasattr(llama_cpp, "llama_model_get_vocab"):
        vocab = llama_cpp.llama_model_get_vocab(model)
        return llama_cpp.llama_vocab_n_tokens(vocab), llama_cpp.llama_vocab_eos(vocab)
    return llama_cpp.llama_n_vocab(model), llama_cpp.llama_token_eos(model)


def batched_decode(llm, prompts: list[list[int]], new_tokens: int, threads: int) -> dict:
    """Greedy decode of every prompt at once (end of text banned, as the engine's bench ignores it): all prompts
    prefilled in one call, then one token per sequence per call. Returns tokens and seconds, prefill included."""
    import llama_cpp

    vocabulary, end_of_text = _vocabulary(llama_cpp, llm.model)
    longest = max(len(p) for p in prompts)
    context = _Context(llama_cpp, llm.model, len(prompts), longest + new_tokens + 8, sum(map(len, prompts)), threads)
    try:
        started = time.perf_counter()
        entries, last_index = [], []
        for sequence, tokens in enumerate(prompts):
            for position, token in enumerate(tokens):
                entries.append((token, position, sequence, position == len(tokens) - 1))
            last_index.append(len(entries) - 1)
        context.decode(entries)
        positions = [len(p) for p in prompts]
        produced = 0
        for step in range(new_tokens):
            chosen = []
            for index in last_index:
                logits = context.logits(index, vocabulary)
                logits[end_of_text] = -np.inf
                chosen.append(int(np.argmax(logits)))
            produced += len(chosen)
            if step == new_tokens - 1:
                break
            context.decode([(token, positions[s], s, True) for s, token in enumerate(chosen)])
            positions = [p + 1 for p in positions]
            last_index = list(range(len(prompts)))
        return {"tokens": produced, "seconds": time.perf_counter() - started}
    finally:
        context.close()


def prefill(llm, tokens: list[int], threads: int) -> dict:
    """One prompt prefilled in one call and its first token chosen: seconds and the prompt's token count."""
    import llama_cpp

    vocabulary, _end = _vocabulary(llama_cpp, llm.model)
    context = _Context(llama_cpp, llm.model, 1, len(tokens) + 16, len(tokens), threads)
    try:
        started = time.perf_counter()
        context.decode([(token, position, 0, position == len(tokens) - 1) for position, token in enumerate(tokens)])
        int(np.argmax(context.logits(len(tokens) - 1, vocabulary)))
        return {"tokens": len(tokens), "seconds": time.perf_counter() - started}
    finally:
        context.close()
