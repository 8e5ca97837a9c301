"""Random-weight models of known shapes, built directly on the device: GPU benchmarks need no weights download."""

from __future__ import annotations

import time

import torch

from engine.weights.devices import QUANTIZED, choose_precision, describe_device, resolve_device
from engine.errors import ModelLoadError
from engine.weights.loader import LoadedModel, LoadedModelInfo, _eos_ids, quantize_and_describe, weight_bytes

SHAPES = {
    # DeepSeek-R1-Distill-Qwen-1.5B
    "qwen2-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                       num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                       max_position_embeddings=131072, rope_theta=10000.0, tie_word_embeddings=False),
    # A few layers of the same family, for tests.
    "qwen2-tiny": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, vocab_size=49152,
                       max_position_embeddings=4096, tie_word_embeddings=False),
}


def build_random_model(shape: str, tokenizer, device_name: str = "auto", precision_name: str = "auto") -> LoadedModel:
    """A randomly initialised model of a named shape; `tokenizer` is any tokenizer with a vocabulary that fits."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if shape not in SHAPES:
        raise ModelLoadError(f"Unknown random model shape '{shape}'; choose one of {', '.join(SHAPES)}.")
    started = time.perf_counter()
    device = resolve_device(device_name)
    precision, dtype, precision_reason = choose_precision(precision_name, device)
    fields = dict(SHAPES[shape])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    if len(tokenizer) > config.vocab_size:
        raise ModelLoadError(f"The tokenizer has {len(tokenizer)} tokens; the {shape} shape has {config.vocab_size}.")
    config.eos_token_id = tokenizer.eos_token_id
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    parameters = sum(p.numel() for p in model.parameters())
    quantization = "none"
    if precision in QUANTIZED:  # as a loaded file would be: the precision asked for is the one measured
        quantization = quantize_and_describe(model, precision, dtype)
    info = LoadedModelInfo(
        name=f"random {shape}", path=f"random:{shape}", format="random", architecture=config.model_type,
        parameters=parameters, precision=precision, device=describe_device(device),
        context_length=config.max_position_embeddings, weight_bytes=weight_bytes(model),
        load_seconds=time.perf_counter() - started, has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        quantization=quantization, precision_reason=precision_reason,
    )
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, device=device, eos_token_ids=_eos_ids(model, tokenizer))
