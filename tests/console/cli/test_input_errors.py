"""Input a user can get wrong on the command line ends in `error: …` naming what is allowed, never a traceback,
and sampling values are refused before a model loads (seconds), not after."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from console.cli.main import main
from tests.console.registry.test_registry_cli import run, workstation  # noqa: F401 (a fixture)

NOT_UTF8 = "caf\udce9"  # how Python hands over the Latin-1 bytes b"caf\xe9" it found in argv


def test_a_prompt_whose_bytes_are_not_utf8_is_an_error_not_a_traceback(workstation):  # noqa: F811
    environment = dict(os.environ, LLM_CONSOLE_DATA_DIR=str(workstation))
    completed = subprocess.run(
        [sys.executable.encode(), b"-m", b"console", b"chat", b"caf\xe9", b"--model", b"./nowhere", b"--quiet"],
        capture_output=True, timeout=120, env=environment,
    )
    stderr = completed.stderr.decode("utf-8", "replace")
    assert completed.returncode == 1, stderr
    assert "error: The user message holds bytes that are not UTF-8 text (at character 4)" in stderr
    assert "Traceback" not in stderr


def test_a_system_prompt_whose_bytes_are_not_utf8_is_an_error(workstation, capsys):  # noqa: F811
    code, _, err = run(capsys, "chat", "hello", "--system", NOT_UTF8, "--model", "./nowhere", "--quiet")
    assert code == 1
    assert "error: The system message holds bytes that are not UTF-8 text" in err


def test_a_seed_beyond_64_bits_is_an_error(workstation, capsys):  # noqa: F811
    code, _, err = run(capsys, "chat", "hello", "--seed", "18446744073709551616", "--model", "./nowhere", "--quiet")
    assert code == 1
    assert "the seed must be a whole number from 0 to 18446744073709551615" in err


def test_sampling_values_are_checked_before_the_model_loads(workstation, capsys):  # noqa: F811
    code, _, err = run(capsys, "chat", "hello", "--temperature", "9", "--model", "./nowhere")
    assert code == 1
    assert "error: Invalid sampling settings: temperature must be between 0 and 5 (got 9.0)." in err
    assert "Checking" not in err and "Model not found" not in err  # no load was tried


@pytest.mark.parametrize(("option", "value", "choices"), [
    ("--precision", "fp64", "auto, fp32, bf16, fp16, int8, int4"),
    ("--device", "tpu", "auto, cpu, cuda"),
])
def test_an_unknown_precision_or_device_is_an_error_naming_the_choices(capsys, option, value, choices):
    code = main(["chat", "hello", option, value])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: {option} '{value}' is not one this console knows. Choose one of: {choices}.\n"


def test_settings_refuse_a_fraction_for_a_whole_number_setting(workstation, capsys):  # noqa: F811
    code, _, err = run(capsys, "settings", "set", "engine.max_batch_size", "8.9")
    assert code == 1
    assert "error: Max batch size: must be a whole number from 1 to 1024 requests (got 8.9)." in err
    assert '"engine.max_batch_size"' not in err
    assert "engine.max_batch_size        8 " in run(capsys, "settings", "list")[1]  # still the default


def test_settings_refuse_a_number_too_big_for_a_float(workstation, capsys):  # noqa: F811
    code, _, err = run(capsys, "settings", "set", "engine.max_batch_size", "1e400")
    assert code == 1
    assert "error: Max batch size: must be from 1 to 1024 requests." in err


def test_settings_accept_a_whole_number_written_with_a_point(workstation, capsys):  # noqa: F811
    code, out, _ = run(capsys, "settings", "set", "engine.max_batch_size", "16.0")
    assert (code, out) == (0, "engine.max_batch_size = 16\n")


@pytest.mark.parametrize("command", [["audit", "list"], ["models", "history"]])
def test_a_limit_too_big_for_the_database_is_an_error(workstation, capsys, command):  # noqa: F811
    code, _, err = run(capsys, *command, "--limit", str(10**23))
    assert code == 2
    assert err == "error: --limit must be a whole number from 1 to 1,000,000 (got 100000000000000000000000).\n"
