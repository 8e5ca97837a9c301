"""The GPU path on a real NVIDIA GPU: the lean decoder in bf16, the static-shape step captured as CUDA graphs,
quantized layers, and `auto` precision. Skipped without CUDA; `scripts/gpu_check` runs them (`-m cuda`)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine import GenerationRequest, InferenceEngine, ModelSpec, SamplingParams
from engine.forward.lean_decoder import LeanDecoder
from engine.weights.devices import choose_precision

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA")]

GREEDY = SamplingParams(temperature=0, max_new_tokens=24, ignore_eos=True)


@pytest.fixture
def cuda_engine(tmp_path):
    engines = []

    def make(compile_decode: str) -> InferenceEngine:
        engine = InferenceEngine(cache_dir=tmp_path / "cache", compile_decode=compile_decode)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.shutdown()


def greedy_texts(engine: InferenceEngine, prompts: list[str]) -> list[str]:
    handles = [engine.submit(GenerationRequest(prompt=p, params=GREEDY)) for p in prompts]
    return [handle.result(300).text for handle in handles]


def test_the_lean_decoder_on_the_gpu_picks_the_tokens_transformers_picks(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).to("cuda").eval()
    decoder = LeanDecoder(model)
    sequences = [[5, 6, 7, 8, 9, 10], [12, 13, 14]]
    logits = decoder.prefill(sequences)
    with torch.inference_mode():
        for row, tokens in enumerate(sequences):
            reference = model(input_ids=torch.tensor([tokens], device="cuda")).logits[0, -1].float()
            assert torch.allclose(logits[row].float(), reference, atol=0.1, rtol=0.05)


def test_the_step_captured_as_cuda_graphs_gives_the_uncompiled_text(cuda_engine, tiny_model_dir):
    prompts = ["hello world", "The capital of France is", "0 1 2 3 4"]
    plain = cuda_engine("off")
    plain.load(ModelSpec(str(tiny_model_dir), precision="bf16", device="cuda"))
    expected = greedy_texts(plain, prompts)
    graphs = cuda_engine("auto")
    graphs.load(ModelSpec(str(tiny_model_dir), precision="bf16", device="cuda"))
    assert "compiled" in graphs.snapshot().decoder
    assert greedy_texts(graphs, prompts) == expected


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_layers_run_on_the_gpu(cuda_engine, tiny_model_dir, precision):
    engine = cuda_engine("off")
    info = engine.load(ModelSpec(str(tiny_model_dir), precision=precision, device="cuda"))
    assert info.precision == precision and "linear layers" in info.quantization
    result = engine.generate(GenerationRequest(prompt="hello world", params=GREEDY), timeout=300)
    assert result.ok and result.completion_tokens == GREEDY.max_new_tokens


def test_auto_precision_on_a_gpu_is_bf16_or_fp16_and_says_so():
    precision, dtype, why = choose_precision("auto", torch.device("cuda"))
    assert precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert dtype in (torch.bfloat16, torch.float16) and "GPU" in why
