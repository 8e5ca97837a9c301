"""CI's gate for the clean-system test: it runs the test when its inputs changed, and says plainly that it did
not run it when the machine cannot (no root, no Debian archive), instead of failing half-way."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parents[2] / "packaging" / "ci-clean-system"


def run_gate(*arguments: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(GATE), *arguments], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **environment})


def test_the_inputs_hash_is_stable_and_recordable():
    first, second = run_gate("--hash"), run_gate("--hash")
    assert first.returncode == 0 and len(first.stdout.strip()) == 64
    assert first.stdout == second.stdout


def test_never_skips_the_test():
    done = run_gate(LLM_CONSOLE_CLEAN_SYSTEM="never")
    assert done.returncode == 0 and "skipped (LLM_CONSOLE_CLEAN_SYSTEM=never)" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the gate's first question is root; as a user it says that instead")
def test_a_machine_without_the_debian_archive_is_named_and_the_test_is_not_started():
    done = run_gate(LLM_CONSOLE_CLEAN_SYSTEM="always", DEBIAN_MIRROR="http://127.0.0.1:9/debian")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NOT RUN, this machine cannot run it: Debian's archive (http://127.0.0.1:9/debian) does not answer" in done.stdout
    assert "== " not in done.stdout  # test-clean-system printed none of its steps


@pytest.mark.skipif(os.geteuid() == 0, reason="runs as a user")
def test_a_user_without_root_is_told_so():
    done = run_gate(LLM_CONSOLE_CLEAN_SYSTEM="always")
    assert done.returncode == 0 and "it does not run as root" in done.stdout
