"""Loading models: what loads, and the clear message for everything that should not."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from engine import DeviceUnavailable, EngineBusy, ModelLoadError, ModelSpec, PrecisionUnsupported


def test_hf_folder_loads_with_its_figures(engine, tiny_model_dir):
    info = engine.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu", name="tiny"))
    assert info.name == "tiny"
    assert info.format == "hf"
    assert info.architecture == "llama"
    assert info.precision == "fp32"
    assert info.device == "cpu"
    assert info.context_length == 2048
    assert info.parameters > 10_000
    assert info.weight_bytes == info.parameters * 4
    assert info.has_chat_template
    assert engine.model_info == info


def test_bf16_halves_weight_memory(engine, tiny_model_dir):
    info = engine.load(ModelSpec(str(tiny_model_dir), precision="bf16", device="cpu"))
    assert info.precision == "bf16"
    assert info.weight_bytes == info.parameters * 2


def test_load_reports_progress_up_to_ready(engine, tiny_model_dir):
    reports = []
    engine.load(ModelSpec(str(tiny_model_dir)), progress=lambda fraction, message: reports.append((fraction, message)))
    assert reports[-1] == (1.0, "Ready")
    fractions = [f for f, _ in reports if f is not None]
    assert fractions == sorted(fractions)


def test_missing_path_names_the_path(engine, tmp_path):
    with pytest.raises(ModelLoadError, match="Model not found: .*nowhere"):
        engine.load(ModelSpec(str(tmp_path / "nowhere")))


def test_folder_without_weights_is_refused(engine, tiny_model_copy):
    for weights in tiny_model_copy.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelLoadError, match="no weights"):
        engine.load(ModelSpec(str(tiny_model_copy)))


def test_truncated_safetensors_is_refused(engine, tiny_model_copy):
    weights = next(tiny_model_copy.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="Could not load"):
        engine.load(ModelSpec(str(tiny_model_copy)))


def test_unknown_architecture_is_named(engine, tiny_model_copy):
    config_path = tiny_model_copy / "config.json"
    config = json.loads(config_path.read_text())
    config["model_type"] = "no-such-architecture"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="Unsupported architecture 'no-such-architecture'"):
        engine.load(ModelSpec(str(tiny_model_copy)))


def test_corrupt_gguf_file_is_refused(engine, tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        engine.load(ModelSpec(str(bogus)))


def test_a_failed_load_keeps_the_loaded_model(engine, tiny_model_dir, tmp_path):
    info = engine.load(ModelSpec(str(tiny_model_dir)))
    with pytest.raises(ModelLoadError):
        engine.load(ModelSpec(str(tmp_path / "missing")))
    assert engine.model_info == info


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_so(engine, tiny_model_dir):
    with pytest.raises(DeviceUnavailable, match="CUDA was requested"):
        engine.load(ModelSpec(str(tiny_model_dir), device="cuda"))


def test_unknown_precision_is_refused(engine, tiny_model_dir):
    with pytest.raises(PrecisionUnsupported, match="Unknown precision 'fp8'"):
        engine.load(ModelSpec(str(tiny_model_dir), precision="fp8"))


def test_second_load_while_one_runs_is_busy(engine, tiny_model_dir):
    inside_first = threading.Event()
    release_first = threading.Event()

    def slow_progress(_fraction, _message):
        inside_first.set()
        release_first.wait(30)

    first = threading.Thread(target=engine.load, args=(ModelSpec(str(tiny_model_dir)), slow_progress))
    first.start()
    assert inside_first.wait(30)
    try:
        with pytest.raises(EngineBusy, match="already loading"):
            engine.load(ModelSpec(str(tiny_model_dir)))
    finally:
        release_first.set()
        first.join(30)
    assert engine.model_info is not None
