"""bf16 weights packed once for oneDNN on a CPU: the lean decoder and transformers' forward both still compute
what the plain weights compute, the slices of a fused group share one matmul, and what must stay plain does."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from engine.weights import onednn
from engine import ModelSpec
from engine.forward.lean_decoder import LeanDecoder
from engine.forward.projections import PackedSlice

pytestmark = pytest.mark.skipif(not onednn.packing_works(), reason="this torch build's oneDNN cannot pack bf16")

# bf16 logits of the tiny model are about 0.1 to 1 in size; bf16 keeps 8 bits, and the packed kernel blocks the
# sums differently from the plain one.
TOLERANCE = 0.03


def logits_of(model, tokens: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([tokens])).logits[0, -1].float()


@pytest.fixture
def bf16_llama(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()


def test_bf16_weights_are_packed_and_both_forwards_match_the_plain_weights(bf16_llama):
    plain = copy.deepcopy(bf16_llama)
    decoder = LeanDecoder(bf16_llama)
    assert decoder.packed
    attention, mlp = bf16_llama.model.layers[0].self_attn, bf16_llama.model.layers[0].mlp
    assert all(type(m) is PackedSlice for m in (attention.q_proj, attention.k_proj, attention.v_proj,
                                                   attention.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj))
    assert type(bf16_llama.lm_head) is PackedSlice  # this model's head is not tied to its embedding table
    assert decoder.layers[0].qkv.layout == (("packed",),)

    sequences = [[5, 6, 7, 8, 9], [10, 11]]
    logits = decoder.prefill(sequences)
    for row, tokens in enumerate(sequences):
        assert (logits[row].float() - logits_of(plain, tokens)).abs().max() < TOLERANCE
    logits = decoder.decode([12, 13])
    for row, tokens in enumerate([sequences[0] + [12], sequences[1] + [13]]):
        assert (logits[row].float() - logits_of(plain, tokens)).abs().max() < TOLERANCE
    # transformers' forward runs through the packed slices (the bench's baselines and perplexity use it)
    assert (logits_of(bf16_llama, [3, 4, 5, 6]) - logits_of(plain, [3, 4, 5, 6])).abs().max() < TOLERANCE


def test_slices_called_with_the_same_input_share_one_matmul(bf16_llama, monkeypatch):
    LeanDecoder(bf16_llama)
    calls = []
    real = onednn.packed_linear
    monkeypatch.setattr(onednn, "packed_linear", lambda x, w, b: calls.append(w.shape) or real(x, w, b))
    logits_of(bf16_llama, [3, 4, 5])
    layers = len(bf16_llama.model.layers)
    # per layer: q/k/v once, o, gate/up once, down; then the head (7 per layer if every slice ran its own)
    assert len(calls) == 4 * layers + 1
    # a slice asked again for the same input runs the matmul again rather than hand out a stale output
    q_proj = bf16_llama.model.layers[0].self_attn.q_proj
    x = torch.randn(1, 2, q_proj.in_features, dtype=torch.bfloat16)
    first = q_proj(x)
    x.mul_(2)
    assert torch.allclose(q_proj(x).float(), 2 * first.float(), atol=0.05)


def test_a_tied_head_and_fp32_weights_stay_plain():
    config = LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    tied = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    decoder = LeanDecoder(tied)
    assert decoder.packed and type(tied.lm_head) is nn.Linear  # the embedding lookup reads that table
    assert decoder.head.layout == (("dense",),)

    fp32 = LlamaForCausalLM(config).eval()
    assert not LeanDecoder(fp32).packed  # packing gains nothing for fp32 (measured), so it is left plain
    assert type(fp32.model.layers[0].self_attn.q_proj) is nn.Linear


def test_a_decoder_to_be_compiled_keeps_plain_weights_and_a_second_decoder_reuses_packed_ones(bf16_llama):
    assert not LeanDecoder(copy.deepcopy(bf16_llama), pack=False).packed  # torch.compile cannot take packed weights

    first = LeanDecoder(bf16_llama)
    second = LeanDecoder(bf16_llama)  # the modules are packed slices now: the new decoder takes their groups
    assert second.packed
    assert second.layers[0].qkv.tensors[0] is first.layers[0].qkv.tensors[0]
    assert (second.prefill([[5, 6, 7]]) - first.prefill([[5, 6, 7]])).abs().max() == 0


def test_without_onednn_bf16_the_weights_stay_plain(bf16_llama, monkeypatch):
    monkeypatch.setattr(onednn, "_WORKS", False)
    decoder = LeanDecoder(bf16_llama)
    assert not decoder.packed and decoder.layers[0].qkv.layout == (("dense",),)
    assert type(bf16_llama.model.layers[0].self_attn.q_proj) is nn.Linear


def test_the_engine_says_its_bf16_weights_are_packed(engine, tiny_model_dir):
    engine.load(ModelSpec(str(tiny_model_dir), precision="bf16", device="cpu"))
    assert engine.snapshot().decoder == "lean, bf16 packed for oneDNN"  # the Engine tab and the load's audit entry
    engine.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
    assert engine.snapshot().decoder == "lean"
