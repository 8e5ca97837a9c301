"""`auto` precision: int8 on a CPU (bf16 where an AMX CPU measures it faster), bf16 or fp16 on a GPU, and the
loaded model says what `auto` chose and why. The CPU's flags and CUDA's bf16 support are the hardware boundary
the tests set; the probe's kernels are real."""

from __future__ import annotations

import pytest
import torch

from engine import ModelSpec
from engine.weights import devices
from engine.weights.devices import choose_precision

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_auto_on_a_cpu_without_amx_is_int8_and_says_why(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_amx", lambda: False)
    precision, dtype, why = choose_precision("auto", CPU)
    assert (precision, dtype) == ("int8", torch.bfloat16)
    assert why == "int8 is the fastest on this CPU within 1 % quality"


@pytest.mark.parametrize("int8_ms, bf16_ms, chosen", [(0.50, 0.30, "bf16"), (0.30, 0.50, "int8")])
def test_auto_on_an_amx_cpu_takes_what_its_probe_measures_faster(monkeypatch, int8_ms, bf16_ms, chosen):
    monkeypatch.setattr(devices, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(devices, "_cpu_matmul_probe", lambda: (int8_ms, bf16_ms))
    precision, _dtype, why = choose_precision("auto", CPU)
    assert precision == chosen
    assert "AMX" in why and f"int8 {int8_ms:.2f} ms, bf16 {bf16_ms:.2f} ms" in why


@pytest.mark.parametrize("has_bf16, chosen, reason", [(True, "bf16", "bf16 on a GPU"),
                                                      (False, "fp16", "fp16: this GPU has no bf16")])
def test_auto_on_a_gpu_is_bf16_or_fp16_without_it(monkeypatch, has_bf16, chosen, reason):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: has_bf16)
    assert choose_precision("auto", GPU) == (chosen, getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[chosen]), reason)


def test_a_named_precision_is_taken_as_it_is_with_no_reason():
    assert choose_precision("fp32", CPU) == ("fp32", torch.float32, "")


def test_the_probe_times_both_kernels_on_this_cpu():
    int8_ms, bf16_ms = devices._cpu_matmul_probe.__wrapped__(rows=256, columns=512, repeats=3)
    assert int8_ms > 0 and bf16_ms > 0


def test_a_model_loaded_at_auto_says_what_auto_chose_and_why(engine, tiny_model_dir):
    info = engine.load(ModelSpec(str(tiny_model_dir), precision="auto", device="cpu"))
    assert info.precision in ("int8", "bf16") and info.precision_reason
    assert info.precision_label == f"{info.precision} (auto: {info.precision_reason})"
