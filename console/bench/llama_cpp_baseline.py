"""The llama.cpp baseline of `llm-console bench`, run in a process of its own so that its threads and the
engine's never compete: `python -m console.bench.llama_cpp_baseline MODEL.gguf NEW_TOKENS PROMPT...` prints JSON."""

from __future__ import annotations

import json
import os
import sys
import time


def measure(gguf_path: str, new_tokens: int, prompts: list[str]) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=gguf_path, n_ctx=1024, n_threads=os.cpu_count(), verbose=False)
    end_of_text = llm.token_eos()
    llm.create_chat_completion(messages=[{"role": "user", "content": "Warm-up."}], max_tokens=4)
    started, tokens = time.perf_counter(), 0
    for prompt in prompts:
        reply = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], max_tokens=new_tokens,
                                           temperature=0.0, logit_bias={end_of_text: -100.0})
        tokens += reply["usage"]["completion_tokens"]
    return {"tokens": tokens, "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), sys.argv[3:])))
