"""The memory estimate read from headers, against the weight memory a real load measures."""

from __future__ import annotations

import pytest
import torch

from engine import ModelSpec
from engine.weights.memory_estimate import (
    PLANNING_CONTEXT_TOKENS,
    estimate_load,
    kv_bytes_per_token,
    read_model_shape,
    shape_from_config,
)
from engine.weights.random_models import SHAPES

TOLERANCE = 0.15


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "int8", "int4"])
def test_estimate_matches_measured_weight_memory(engine, tiny_model_dir, precision):
    estimate = estimate_load(read_model_shape(tiny_model_dir), precision, "cpu", free_bytes=2**40)
    info = engine.load(ModelSpec(str(tiny_model_dir), precision=precision, device="cpu"))
    assert abs(estimate.weight_bytes - info.weight_bytes) <= TOLERANCE * info.weight_bytes


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8", "int4"])
def test_random_shape_estimate_matches_measured_weight_memory(engine, tiny_model_dir, precision):
    from transformers import AutoTokenizer

    info = engine.load_random("qwen2-tiny", AutoTokenizer.from_pretrained(tiny_model_dir), "cpu", precision)
    estimate = estimate_load(shape_from_config(SHAPES["qwen2-tiny"]), precision, "cpu", free_bytes=2**40)
    assert abs(estimate.weight_bytes - info.weight_bytes) <= TOLERANCE * info.weight_bytes


def test_kv_cache_is_two_times_layers_heads_dim_bytes_context_sequences(tiny_model_dir):
    shape = read_model_shape(tiny_model_dir)  # 2 layers, 2 KV heads, head dim 8
    estimate = estimate_load(shape, "fp32", "cpu", sequences=3, context_tokens=100, free_bytes=2**40)
    assert estimate.kv_cache_bytes == 2 * 2 * 2 * 8 * 4 * 100 * 3
    int8 = estimate_load(shape, "int8", "cpu", sequences=1, context_tokens=1, free_bytes=2**40)
    assert int8.kv_cache_bytes == 2 * 2 * 2 * 8 * 2 == kv_bytes_per_token(shape, torch.bfloat16)  # int8 computes in bf16


def test_estimate_plans_the_kv_cache_for_the_planning_context_or_a_shorter_window(tiny_model_dir):
    estimate = estimate_load(read_model_shape(tiny_model_dir), "fp32", "cpu", free_bytes=2**40)
    assert estimate.context_tokens == min(2048, PLANNING_CONTEXT_TOKENS)


def test_estimate_does_not_fit_when_free_memory_is_short(tiny_model_dir):
    estimate = estimate_load(read_model_shape(tiny_model_dir), "fp32", "cpu", free_bytes=1000)
    assert not estimate.fits
    assert estimate.total_bytes == sum(estimate.items().values())
