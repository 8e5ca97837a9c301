"""The transformers continuous-batching baseline of `llm-console bench`: `model.generate_batch` (paged attention,
its own scheduler) on the loaded model and the same prompts, at each concurrency level.

It runs on the scheduler thread between steps, like the other Hugging Face baselines. Each call builds and
warms transformers' batching manager, so a level first runs once to warm up and is then timed.
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
        if not hasattr(model, "generate_batch"):
            raise RuntimeError("this transformers has no continuous batching (generate_batch)")
        config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None,
                                  pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        runs = []
        for level in levels:
            inputs = []
            for prompt in prompts_of_level(level):
                text = (tokenizer.apply_chat_template(chat(prompt), tokenize=False, add_generation_prompt=True)
                        if loaded.info.has_chat_template else prompt)
                inputs.append(tokenizer(text, add_special_tokens=False)["input_ids"])
            model.generate_batch(inputs=inputs[:1], generation_config=config, max_new_tokens=4)  # warm-up
            started = time.perf_counter()
            outputs = model.generate_batch(inputs=inputs, generation_config=config, max_new_tokens=new_tokens)
            elapsed = time.perf_counter() - started
            failed = [output.error for output in outputs.values() if output.error]
            if failed or len(outputs) < len(inputs):
                raise RuntimeError(f"generate_batch failed: {failed[0] if failed else 'requests went missing'}")
            tokens = sum(len(output.generated_tokens) for output in outputs.values())
            runs.append(BaselineRun("transformers-continuous-batching", level, tokens / elapsed))
        return runs

    import torch

    return engine.run_on_model(lambda loaded: torch.inference_mode()(run)(loaded))
