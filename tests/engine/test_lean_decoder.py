"""The lean decoder computes what transformers' forward computes, for rows of different lengths that join and leave."""

from __future__ import annotations

import shutil
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, Qwen2Config, Qwen2ForCausalLM

from engine.forward.lean_decoder import LeanDecoder, unsupported_reason
from engine.weights.quantization import quantize_model

TOLERANCE = 1e-4


def reference_logits(model, tokens: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([tokens])).logits[0, -1].float()


def assert_matches(model, logits: torch.Tensor, sequences: list[list[int]], tolerance: float = TOLERANCE) -> None:
    assert logits.shape[0] == len(sequences)
    for row, tokens in enumerate(sequences):
        difference = (logits[row].float() - reference_logits(model, tokens)).abs().max().item()
        assert difference < tolerance, f"row {row}: logits differ by {difference}"


def tiny_qwen2() -> Qwen2ForCausalLM:
    torch.manual_seed(1)
    config = Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    return Qwen2ForCausalLM(config).eval()  # q/k/v projections with biases


def int4_ready_llama(mode: str) -> LlamaForCausalLM:
    """bf16 Llama, quantized, whose projections fill whole tiles of the CPU int4 layout (64 rows on AVX-512),
    as real models' do: the tiny model's 16-row key projection does not, so its int4 layers cannot fuse."""
    torch.manual_seed(2)
    config = LlamaConfig(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    quantize_model(model, mode, torch.bfloat16)
    return model


@pytest.fixture
def llama(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_rows_of_different_lengths_join_decode_and_leave_as_transformers_computes(family, llama):
    model = llama if family == "llama" else tiny_qwen2()
    decoder = LeanDecoder(model)
    sequences = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [20, 21, 22, 23, 24]]
    assert_matches(model, decoder.prefill(sequences), sequences)

    for _ in range(3):  # decode every row at its own position
        logits = decoder.decode([tokens[-1] + 1 for tokens in sequences])
        sequences = [tokens + [tokens[-1] + 1] for tokens in sequences]
        assert_matches(model, logits, sequences)

    order = decoder.cache.remove([0])  # the first row leaves; the last one moves into its place
    assert order == [2, 1]
    sequences = [sequences[row] for row in order]
    joiner = [30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41]  # joins a running batch, longer than the others
    assert_matches(model, decoder.prefill([joiner]), [joiner])
    sequences.append(joiner)
    logits = decoder.decode([tokens[-1] for tokens in sequences])
    sequences = [tokens + [tokens[-1]] for tokens in sequences]
    assert_matches(model, logits, sequences)
    assert decoder.cache.lengths == [len(tokens) for tokens in sequences]


def test_the_cache_grows_past_its_first_block_and_keeps_what_it_held(llama):
    decoder = LeanDecoder(llama)
    short = [3, 4, 5]
    decoder.prefill([short])
    capacity = decoder.cache.length_capacity
    long = list(range(10, 10 + capacity + 20))  # longer than the cache: it grows, copying the short row
    assert_matches(llama, decoder.prefill([long]), [long])
    assert decoder.cache.length_capacity > capacity
    logits = decoder.decode([7, 8])
    assert_matches(llama, logits, [short + [7], long + [8]])


def test_fused_projections_leave_the_transformers_forward_unchanged(llama):
    tokens = [5, 9, 14, 2, 7]
    before = reference_logits(llama, tokens)
    decoder = LeanDecoder(llama)
    after = reference_logits(llama, tokens)
    assert torch.equal(before, after)
    attention = llama.model.layers[0].self_attn
    # The modules now hold views of the fused weight: nothing is stored twice.
    fused = decoder.layers[0].qkv.tensors[0]
    assert attention.q_proj.weight.untyped_storage().data_ptr() == fused.untyped_storage().data_ptr()


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantized_layers_fuse_and_match(mode):
    model = int4_ready_llama(mode)
    before = reference_logits(model, [3, 4, 5, 6])
    decoder = LeanDecoder(model)
    # q/k/v fuse into one matmul, and so do gate/up: int8 as views, int4 as concatenated packed rows
    kind = ("int8",) if mode == "int8" else ("int4-cpu", 32)
    assert decoder.layers[0].qkv.layout == (kind,) and decoder.layers[0].gate_up.layout == (kind,)
    # transformers' forward (perplexity, the bench's baselines) computes exactly what it computed before
    assert torch.equal(reference_logits(model, [3, 4, 5, 6]), before)
    sequences = [[5, 6, 7, 8], [9, 10]]
    assert_matches(model, decoder.prefill(sequences), sequences, tolerance=0.05)
    logits = decoder.decode([11, 12])
    assert_matches(model, logits, [sequences[0] + [11], sequences[1] + [12]], tolerance=0.05)


def test_int4_decode_runs_four_matmuls_per_layer(monkeypatch):
    decoder = LeanDecoder(int4_ready_llama("int4"))
    decoder.prefill([[5, 6, 7], [8, 9]])
    calls = []
    real = torch._weight_int4pack_mm_for_cpu
    monkeypatch.setattr(torch, "_weight_int4pack_mm_for_cpu", lambda *a: calls.append(a[1].shape) or real(*a))
    decoder.decode([10, 11])
    # q/k/v, o, gate/up, down, then the head (7 per layer when q/k/v and gate/up ran separately)
    assert len(calls) == 4 * len(decoder.layers) + 1


def test_int4_layers_stay_separate_where_the_fused_kernel_disagrees(monkeypatch):
    from engine.forward import projections

    model = int4_ready_llama("int4")
    real = projections.weight_only_linear
    # the fused weight computes something else (as a tile layout spanning two layers' rows would)
    monkeypatch.setattr(projections, "weight_only_linear", lambda kind, x, w, s, b: real(kind, x, w, s, b) + 1)
    decoder = LeanDecoder(model)
    assert decoder.layers[0].qkv.layout == (("int4-cpu", 32),) * 3
    monkeypatch.setattr(projections, "weight_only_linear", real)
    sequences = [[5, 6, 7, 8], [9, 10]]
    assert_matches(model, decoder.prefill(sequences), sequences, tolerance=0.05)


def test_rotation_and_norm_round_as_transformers_does_in_bf16():
    """The lean decoder rotates queries and keys with roll and a signed sine, and normalises without copying
    to float32 first: in bf16 both must round exactly as transformers' code does (a fused multiply-add that
    rounds once moved the lean decoder's bf16 perplexity by almost 1 %)."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb

    from engine.forward.lean_decoder import _rms_norm, _rotate, _signed_sin

    torch.manual_seed(3)
    q = (torch.randn(3, 4, 5, 64) * 4).to(torch.bfloat16)
    k = (torch.randn(3, 2, 5, 64) * 4).to(torch.bfloat16)
    angles = torch.randn(1, 5, 32) * 3
    cos = torch.cat((angles.cos(), angles.cos()), -1).to(torch.bfloat16)
    sin = torch.cat((angles.sin(), angles.sin()), -1).to(torch.bfloat16)
    expected_q, expected_k = apply_rotary_pos_emb(q, k, cos, sin)  # cos/sin [1, positions, dim], unsqueezed inside
    signed = _signed_sin(sin[:, None])
    assert torch.equal(_rotate(q, cos[:, None], signed), expected_q)
    assert torch.equal(_rotate(k, cos[:, None], signed), expected_k)

    norm = LlamaRMSNorm(64, eps=1e-5).to(torch.bfloat16)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(64) * 2)
    x = (torch.randn(6, 64) * 5).to(torch.bfloat16)
    assert torch.equal(_rms_norm(x, norm.weight, 1e-5), norm(x))


def test_models_the_lean_decoder_cannot_run_say_why():
    mistral = MistralConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=4, num_key_value_heads=2, sliding_window=16)
    model = AutoModelForCausalLM.from_config(mistral)
    assert unsupported_reason(model) == "sliding-window attention"
    with pytest.raises(ValueError, match="sliding-window"):
        LeanDecoder(model)
    gelu = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, hidden_act="gelu"))
    assert unsupported_reason(gelu) == "activation 'gelu'"


def test_an_empty_batch_frees_the_cache(llama):
    decoder = LeanDecoder(llama)
    decoder.prefill([[1, 2, 3]])
    assert decoder.cache.bytes() > 0
    decoder.cache.release()
    assert decoder.cache.bytes() == 0 and decoder.cache.rows == 0
    assert_matches(llama, decoder.prefill([[4, 5]]), [[4, 5]])


def test_static_shapes_pad_the_batch_and_still_match(llama):
    """The GPU layout (power-of-two batches attending over the whole cache), checked here on the CPU."""
    decoder = LeanDecoder(llama, static_shapes=True)
    sequences = [[5, 6, 7, 8, 9], [12, 13, 14]]
    decoder.prefill(sequences)
    decoder.prefill([[20, 21, 22, 23]])  # three rows: decode pads them to four
    sequences.append([20, 21, 22, 23])
    for step in range(2):
        logits = decoder.decode([40 + step] * 3)
        sequences = [tokens + [40 + step] for tokens in sequences]
        assert_matches(llama, logits, sequences)
    assert decoder.cache.rows == 3 and decoder.cache.row_capacity >= 4
    order = decoder.cache.remove([1])
    sequences = [sequences[row] for row in order]
    assert_matches(llama, decoder.decode([50, 51]), [tokens + [token] for tokens, token in zip(sequences, [50, 51])])


def compiler_available() -> bool:
    return shutil.which("g++") is not None or shutil.which("clang++") is not None


@pytest.mark.skipif(not compiler_available(), reason="torch.compile on a CPU needs a C++ compiler")
def test_the_step_compiled_in_the_background_takes_over_and_matches(llama):
    decoder = LeanDecoder(llama)
    sequences = [[5, 6, 7], [8, 9, 10, 11, 12]]
    decoder.prefill(sequences)
    finished = threading.Event()
    outcome = {}
    decoder.compile_in_background(lambda error, seconds: (outcome.update(error=error), finished.set()))
    assert decoder.compiling
    logits = decoder.decode([30, 31])  # the uncompiled step serves meanwhile, on its own rows
    sequences = [tokens + [token] for tokens, token in zip(sequences, [30, 31])]
    assert_matches(llama, logits, sequences)
    assert finished.wait(300) and outcome["error"] is None
    assert decoder.compiled and not decoder.compiling and decoder.cache.rows == 2
    for step in range(2):
        logits = decoder.decode([40, 41])
        sequences = [tokens + [token] for tokens, token in zip(sequences, [40, 41])]
        assert_matches(llama, logits, sequences)


def test_the_gpu_layout_compiles_whole_and_matches_on_the_cpu_too(llama):
    """CUDA graphs need a GPU; the static-shape whole-step compile around them runs (and is checked) here."""
    if not compiler_available():
        pytest.skip("torch.compile on a CPU needs a C++ compiler")
    decoder = LeanDecoder(llama, static_shapes=True)
    decoder.compile_on_gpu(max_rows=2)
    assert decoder.compiled and decoder.cache.rows == 0
    sequences = [[5, 6, 7], [8, 9, 10, 11, 12]]
    decoder.prefill(sequences)
    logits = decoder.decode([30, 31])
    assert_matches(llama, logits, [tokens + [token] for tokens, token in zip(sequences, [30, 31])])
