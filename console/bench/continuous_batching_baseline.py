"""The transformers continuous-batching baseline of `llm-console bench`: `model.generate_batch` (paged attention,
its own scheduler) on the loaded model and the same prompts, at each concurrency level.

It runs on the scheduler thread between steps, like the other Hugging Face baselines. One batching manager
serves every level; its set-up and warm-up (CUDA graph capture on a GPU) happen before any timing.
"""

from __future__ import annotations

import time

from engine import InferenceEngine


def continuous_batching_baselines(engine: InferenceEngine, prompts_of_level, levels: list[int], new_tokens: int,
                                  chat) -> list:
    """BaselineRun("transformers-continuous-batching", level, tok/s) per level; raises RuntimeError when this
    transformers has no `generate_batch` or it fails (the bench then notes why and goes on)."""
    from console.bench.runner import BaselineRun

    def run(loaded) -> list:
        from transformers import GenerationConfig

        model, tokenizer = loaded.model, loaded.tokenizer
        if not hasattr(model, "init_continuous_batching"):
            raise RuntimeError("this transformers has no continuous batching (init_continuous_batching)")
        config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=-1,
                                  pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        manager = model.init_continuous_batching(generation_config=config)
        if hasattr(manager, "warmup"):  # captures its CUDA graphs; not part of the timing
            manager.warmup()
        manager.start()
        try:
            generate(manager, [_ids(loaded, "Warm-up.")], 4)
            runs = []
            for level in levels:
                inputs = [_ids(loaded, prompt) for prompt in prompts_of_level(level)]
                started = time.perf_counter()
                tokens = generate(manager, inputs, new_tokens)
                runs.append(BaselineRun("transformers-continuous-batching", level, tokens / (time.perf_counter() - started)))
            return runs
        finally:
            manager.stop(block=True, timeout=60)

    def _ids(loaded, prompt: str) -> list[int]:
        tokenizer = loaded.tokenizer
        text = (tokenizer.apply_chat_template(chat(prompt), tokenize=False, add_generation_prompt=True)
                if loaded.info.has_chat_template else prompt)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(manager, inputs: list[list[int]], tokens: int) -> int:
        """Submit every input and wait for all of them; returns the tokens they generated. (Older transformers
        return no request ids from add_requests, so finished requests are counted.)"""
        manager.add_requests(inputs=inputs, max_new_tokens=tokens)
        finished, generated = set(), 0
        while len(finished) < len(inputs):
            result = manager.get_result(timeout=60)
            if result is None:
                if not manager.is_running():
                    raise RuntimeError("transformers' batching thread stopped")
                continue
            if result.is_finished() and result.request_id not in finished:
                if result.error:
                    raise RuntimeError(f"a request failed: {result.error}")
                finished.add(result.request_id)
                generated += len(result.generated_tokens)
        return generated

    import torch

    return engine.run_on_model(lambda loaded: torch.inference_mode()(run)(loaded))
