"""The llama.cpp baselines of `llm-console bench`, run in a process of its own so that its threads and the
engine's never compete: `python -m console.bench.llama_cpp_baseline < SPEC.json` prints JSON.

The spec names the GGUF file, the new tokens, the chat prompts of one stream, the already formatted prompts of
each batched level, and the long prompts of the prefill case. Figures: one stream through the high-level chat
API; batched decode and prefill through the low-level API (`llama_cpp_batched.py`).
"""

from __future__ import annotations

import json
import os
import sys
import time


def without_extra_buffers() -> None:
    """Load models without llama.cpp's extra buffer types (weights repacked for AMX or AVX-512 at load): on
    some machines the AMX path crashes the process (seen on a VM whose CPU reports AMX)."""
    import llama_cpp
    import llama_cpp.llama

    default = llama_cpp.llama_model_default_params

    def params():
        chosen = default()
        chosen.use_extra_bufts = False
        return chosen

    llama_cpp.llama_model_default_params = llama_cpp.llama.llama_cpp.llama_model_default_params = params


def measure(spec: dict) -> dict:
    if spec.get("no_extra_buffers"):
        without_extra_buffers()
    from llama_cpp import Llama

    from console.bench.llama_cpp_batched import batched_decode, prefill

    threads = os.cpu_count()
    llm = Llama(model_path=spec["gguf_path"], n_ctx=1024, n_threads=threads, verbose=False)
    new_tokens = spec["new_tokens"]
    end_of_text = llm.token_eos()
    llm.create_chat_completion(messages=[{"role": "user", "content": "Warm-up."}], max_tokens=4)
    started, tokens = time.perf_counter(), 0
    for prompt in spec["prompts"]:
        reply = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], max_tokens=new_tokens,
                                           temperature=0.0, logit_bias={end_of_text: -100.0})
        tokens += reply["usage"]["completion_tokens"]
    figures: dict = {"tokens": tokens, "seconds": time.perf_counter() - started, "batched": {}, "prefill": {}}

    def tokenize(text: str) -> list[int]:
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    for level, texts in spec.get("batched_texts", {}).items():
        figures["batched"][level] = batched_decode(llm, [tokenize(t) for t in texts], new_tokens, threads)
    for length, text in spec.get("prefill_texts", {}).items():
        tokens_of_text = tokenize(text)
        prefill(llm, tokens_of_text[:64], threads)  # warm-up of the prefill path
        runs = [prefill(llm, tokens_of_text, threads) for _ in range(2)]
        figures["prefill"][length] = min(runs, key=lambda run: run["seconds"])
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(json.load(sys.stdin))))
