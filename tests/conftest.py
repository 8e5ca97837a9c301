"""Shared fixtures: a tiny random model built once per session, an isolated data directory, engines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_gguf

    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.gguf", tiny_model_dir)


@pytest.fixture
def tiny_model_copy(tiny_model_dir, tmp_path) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny-llama"))


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """A data directory kept for the session, so the embedded GGUF model is converted only once."""
    return tmp_path_factory.mktemp("llm-console-data")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch, shared_data_dir) -> Path:
    """Commands run in tests act as the test administrator of the shared data directory."""
    from tests.access_helpers import TEST_ADMIN, TEST_PASSWORD, ensure_admin

    ensure_admin(shared_data_dir)
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("LLM_CONSOLE_USER", TEST_ADMIN)
    monkeypatch.setenv("LLM_CONSOLE_PASSWORD", TEST_PASSWORD)
    # No background torch.compile after every load (tests of compiling ask for it themselves).
    monkeypatch.setenv("LLM_CONSOLE_COMPILE", "off")
    return shared_data_dir


@pytest.fixture
def engine(tmp_path):
    from engine import InferenceEngine

    instance = InferenceEngine(cache_dir=tmp_path / "cache", compile_decode="off")
    yield instance
    instance.shutdown()


@pytest.fixture
def tiny_engine(engine, tiny_model_dir):
    from engine import ModelSpec

    engine.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
    return engine


@pytest.fixture
def admin_window(qtbot, tmp_path):
    """The real main window, signed in as the test administrator, on a data directory of its own."""
    from tests.access_helpers import admin_core
    from ui.app import build_main_window

    main_window = build_main_window(*admin_core(tmp_path / "data"))
    qtbot.addWidget(main_window)
    main_window.show()
    yield main_window
    main_window.shutdown()


@pytest.fixture
def tiny_window(admin_window, qtbot, tiny_model_dir):
    """The admin window with the tiny model loaded through the model bar."""
    admin_window.model_bar.add_model_path(str(tiny_model_dir))
    with qtbot.waitSignal(admin_window.adapter.load_finished, timeout=60_000):
        admin_window.model_bar.load_button.click()
    return admin_window


@pytest.fixture
def nvml():
    """Two scripted GPUs for telemetry and alert tests (no NVIDIA library needed)."""
    from tests.fake_nvml import FakeGpu, FakeNvml

    return FakeNvml(FakeGpu(utilization=50), FakeGpu(name="NVIDIA Fake L4", utilization=50))


@pytest.fixture
def engine_figures():
    """Engine figures a test scripts one sample at a time."""
    from tests.engine_figures import ScriptedEngineFigures

    return ScriptedEngineFigures()
