"""int4 prefill: from INT4_WIDEN_ROWS rows on, a CPU-packed 4-bit weight is widened to bf16 for one GEMM instead of
going through PyTorch's int4 kernel, whose cost per row stays flat from 4 rows on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.weights import quantization
from engine.weights.quantization import INT4_WIDEN_ROWS, Int4WeightOnlyLinear, int4_widens


def int4_layer(in_features: int = 128, out_features: int = 256) -> Int4WeightOnlyLinear:
    torch.manual_seed(4)
    return Int4WeightOnlyLinear(nn.Linear(in_features, out_features, bias=False), torch.bfloat16)


def count_kernel_calls(monkeypatch) -> list:
    calls = []
    real = torch._weight_int4pack_mm_for_cpu
    monkeypatch.setattr(torch, "_weight_int4pack_mm_for_cpu", lambda *a: calls.append(a[0].shape[0]) or real(*a))
    return calls


def test_the_packed_layout_is_read_back_on_this_cpu():
    # AVX-512 and AVX2 builds both lay out whole tiles; a layout the probe cannot read disables widening
    assert quantization._int4_tile() in (16, 32, 64)
    assert int4_widens(int4_layer().weight_int4)


def test_many_rows_widen_and_compute_what_the_packed_kernel_computes(monkeypatch):
    layer = int4_layer()
    x = torch.randn(INT4_WIDEN_ROWS + 16, 128, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    packed = torch._weight_int4pack_mm_for_cpu(x, layer.weight_int4, layer.group_size, layer.scales_and_zeros)
    calls = count_kernel_calls(monkeypatch)
    widened = layer(x)
    assert calls == []  # one bf16 GEMM, not the int4 kernel
    # the same weights: only the bf16 rounding of the widened weight differs
    assert (widened.float() - packed.float()).abs().max() <= 0.01 * packed.float().abs().max()


def test_a_decode_step_of_few_rows_keeps_the_packed_kernel(monkeypatch):
    layer = int4_layer()
    calls = count_kernel_calls(monkeypatch)
    layer(torch.randn(1, 128, dtype=torch.bfloat16))
    layer(torch.randn(INT4_WIDEN_ROWS - 1, 128, dtype=torch.bfloat16))
    assert calls == [1, INT4_WIDEN_ROWS - 1]


def test_a_weight_that_does_not_fill_whole_tiles_keeps_the_packed_kernel(monkeypatch):
    layer = int4_layer(out_features=quantization._int4_tile() // 2 or 8)
    calls = count_kernel_calls(monkeypatch)
    layer(torch.randn(INT4_WIDEN_ROWS, 128, dtype=torch.bfloat16))
    assert calls == [INT4_WIDEN_ROWS]


@pytest.mark.parametrize("bias", [False, True])
def test_a_long_prompt_prefills_as_transformers_computes(bias, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.forward.lean_decoder import LeanDecoder
    from engine.weights.quantization import quantize_model

    torch.manual_seed(2)
    config = LlamaConfig(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attention_bias=bias)
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    quantize_model(model, "int4", torch.bfloat16)
    prompt = [(7 * i) % 300 + 1 for i in range(INT4_WIDEN_ROWS + 20)]
    decoder = LeanDecoder(model)
    logits = decoder.prefill([prompt])[0].float()
    monkeypatch.setattr(quantization, "INT4_WIDEN_ROWS", 10**9)  # transformers' forward through the packed kernel only
    with torch.inference_mode():
        reference = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
    assert (logits - reference).abs().max() < 0.05
    assert logits.argmax() == reference.argmax()
