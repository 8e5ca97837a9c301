"""The embedded SmolLM2-135M-Instruct (GGUF) answers a real question, in the engine and through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from console.registry.default_model import default_model_path
from engine import FinishReason, GenerationRequest, SamplingParams
from tests.access_helpers import admin_core

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_default_model_ships_as_a_gguf_file():
    path = default_model_path()
    assert path.suffix == ".gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def test_default_model_answers_paris_and_second_load_uses_the_cache(shared_data_dir):
    core, admin = admin_core(shared_data_dir)
    try:
        info = core.load_model(admin, core.default_model_spec(precision="fp32", device="cpu"))
        assert info.name == "SmolLM2-135M-Instruct"
        assert info.format == "gguf"
        assert info.architecture == "llama"
        assert 130e6 < info.parameters < 140e6
        result = core._engine.generate(
            GenerationRequest(messages=QUESTION, params=SamplingParams(temperature=0.0, max_new_tokens=32)), timeout=120
        )
        assert "Paris" in result.text
        assert result.finish_reason in (FinishReason.END_OF_TEXT, FinishReason.MAX_TOKENS)

        reports = []
        core.load_model(admin, core.default_model_spec(precision="fp32", device="cpu"), lambda f, m: reports.append(m))
        assert "Using converted copy from cache (checked)" in reports
    finally:
        core.shutdown()


def test_cli_chat_prints_a_streamed_answer(shared_data_dir):
    environment = dict(os.environ, LLM_CONSOLE_DATA_DIR=str(shared_data_dir))
    completed = subprocess.run(
        [sys.executable, "-m", "ui.main", "chat", "What is the capital of France?", "--max-new-tokens", "40"],
        # The first load of the registered default converts the GGUF file itself: a copy made by an unregistered
        # load has no checksums in the registry. On a busy two-core machine that conversion alone took 4-6 min.
        capture_output=True, text=True, timeout=900, env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Paris" in completed.stdout
    assert "tok/s" in completed.stderr


def test_cli_chat_with_a_broken_model_prints_the_error_and_fails(tmp_path, shared_data_dir):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"\0" * 1024)
    environment = dict(os.environ, LLM_CONSOLE_DATA_DIR=str(shared_data_dir))
    completed = subprocess.run(
        [sys.executable, "-m", "ui.main", "chat", "hi", "--model", str(broken)],
        capture_output=True, text=True, timeout=120, env=environment,
    )
    assert completed.returncode == 1
    assert "error: broken.gguf is not a GGUF file" in completed.stderr


def test_a_changed_converted_copy_is_converted_again(shared_data_dir, tmp_path):
    from engine import InferenceEngine, ModelSpec
    from engine.weights.gguf_cache import cache_folder, copy_is_intact

    engine = InferenceEngine(cache_dir=tmp_path / "cache", compile_decode="off")
    try:
        spec = ModelSpec(str(default_model_path()), precision="fp32", device="cpu")
        engine.load(spec)
        folder = cache_folder(default_model_path(), tmp_path / "cache")
        assert copy_is_intact(folder)
        with (folder / "config.json").open("a") as handle:
            handle.write(" ")
        assert not copy_is_intact(folder)
        reports = []
        engine.load(spec, lambda _f, message: reports.append(message))
        assert "The converted copy in the cache was changed: converting again" in reports
        assert copy_is_intact(folder)
    finally:
        engine.shutdown()
