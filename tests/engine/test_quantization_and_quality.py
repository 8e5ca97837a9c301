"""Precision and quantization at load, weight memory, perplexity, and random-shape models."""

from __future__ import annotations

import math

import pytest

from engine import GenerationRequest, ModelSpec, SamplingParams
from engine.weights.quantization import Int4WeightOnlyLinear, Int8WeightOnlyLinear
from resources import resource_path

TEXT = resource_path("perplexity.txt").read_text(encoding="utf-8")


def load(engine, folder, precision):
    return engine.load(ModelSpec(str(folder), precision=precision, device="cpu"))


@pytest.mark.parametrize("precision, layer_type", [("int8", Int8WeightOnlyLinear), ("int4", Int4WeightOnlyLinear)])
def test_quantized_load_replaces_every_linear_layer_and_generates(engine, tiny_model_dir, precision, layer_type):
    info = load(engine, tiny_model_dir, precision)
    assert info.precision == precision
    assert "linear layers" in info.quantization and "packed" in info.quantization
    layers = engine.run_on_model(lambda loaded: [type(m) for m in loaded.model.modules()])
    assert layer_type in layers
    result = engine.generate(GenerationRequest(messages=[{"role": "user", "content": "hi"}],
                                               params=SamplingParams(temperature=0, max_new_tokens=10)), timeout=30)
    assert result.ok and result.completion_tokens == 10


def test_weight_memory_shrinks_with_precision(engine, tiny_model_dir):
    sizes = {precision: load(engine, tiny_model_dir, precision).weight_bytes for precision in ("fp32", "bf16", "int8", "int4")}
    assert sizes["bf16"] == sizes["fp32"] // 2
    assert sizes["int8"] <= 0.30 * sizes["fp32"]
    assert sizes["int4"] < sizes["int8"]


def test_int8_perplexity_stays_close_to_fp32(engine, tiny_model_dir):
    load(engine, tiny_model_dir, "fp32")
    full = engine.perplexity(TEXT, timeout=60)
    load(engine, tiny_model_dir, "int8")
    quantized = engine.perplexity(TEXT, timeout=60)
    assert math.isfinite(full) and full > 1
    assert abs(quantized - full) / full < 0.02


def test_random_model_of_a_named_shape_serves_requests(engine, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    info = engine.load_random("qwen2-tiny", tokenizer, device="cpu", precision="fp32")
    assert info.architecture == "qwen2" and info.format == "random"
    result = engine.generate(GenerationRequest(prompt="hello", params=SamplingParams(temperature=0, max_new_tokens=5)), timeout=30)
    assert result.completion_tokens == 5


def test_int4_layers_take_a_strided_input(tiny_model_dir):
    """transformers hands the output head a slice of the last positions: a view that is not contiguous."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.weights.quantization import quantize_model

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    quantize_model(model, "int4", torch.bfloat16)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]]), logits_to_keep=1)
    assert out.logits.shape[:2] == (2, 1)
