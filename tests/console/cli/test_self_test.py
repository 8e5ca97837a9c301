"""`llm-console self-test`: the checklist it prints, its exit status, and the failures it names."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from console.cli.self_test import check_local_api, check_qt_platform


def run_self_test(data_dir) -> subprocess.CompletedProcess:
    environment = dict(os.environ, LLM_CONSOLE_DATA_DIR=str(data_dir))
    environment.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "ui", "self-test"], capture_output=True, text=True, timeout=300,
                          env=environment, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_self_test_passes_every_check_and_the_model_answers_paris(shared_data_dir):
    completed = run_self_test(shared_data_dir)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for check in ("Qt platform plugin", "Data directory", "SQLite", "PyTorch", "Embedded model"):
        assert f"[ ok ] {check}" in completed.stdout
    assert "Paris" in completed.stdout
    assert "All checks passed in" in completed.stdout


def test_unwritable_data_directory_fails_the_check_skips_the_model_and_exits_1(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    completed = run_self_test(blocker / "data")
    assert completed.returncode == 1
    assert f"[FAIL] Data directory      cannot write {blocker / 'data'}" in completed.stdout
    assert "[skip] SQLite              needs Data directory" in completed.stdout
    assert "[skip] Embedded model      needs Data directory" in completed.stdout
    assert "checks failed (Data directory) in" in completed.stdout


def test_qt_check_starts_the_platform_plugin_and_checks_the_xcb_libraries(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    result = check_qt_platform()
    assert result.passed, result.detail
    assert "offscreen started" in result.detail
    assert "the xcb plugin's libraries load" in result.detail


def test_a_qt_platform_that_cannot_start_fails_with_qts_reason_and_the_libraries_to_install(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-platform")
    result = check_qt_platform()
    assert result.passed is False
    assert "no-such-platform" in result.detail
    assert "sudo apt install libegl1" in result.detail


def test_api_check_is_skipped_with_what_to_set_when_no_user_can_start_the_server(monkeypatch):
    monkeypatch.delenv("LLM_CONSOLE_USER", raising=False)
    result = check_local_api()
    assert result.passed is None
    assert "LLM_CONSOLE_USER" in result.detail
