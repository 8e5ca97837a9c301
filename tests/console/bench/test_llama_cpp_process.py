"""The llama.cpp baseline's process: a crash by a signal (llama.cpp's AMX weight repacking, on some CPUs) is run
again without the extra buffer types and noted; any other failure says why."""

from __future__ import annotations

import json
import subprocess

import pytest

from console.bench.runner import run_llama_cpp_process

FIGURES = {"tokens": 8, "seconds": 1.0, "batched": {}, "prefill": {}}


def scripted(*outcomes):
    calls = []

    def run(spec):
        calls.append(spec)
        code, out, err = outcomes[len(calls) - 1]
        return subprocess.CompletedProcess([], code, out, err)

    return run, calls


def test_a_process_killed_by_a_signal_runs_again_without_extra_buffers_and_says_so():
    run, calls = scripted((-11, "", ""), (0, "llama.cpp noise\n" + json.dumps(FIGURES), ""))
    notes: list[str] = []
    assert run_llama_cpp_process({"gguf_path": "m.gguf"}, notes, run) == FIGURES
    assert [c.get("no_extra_buffers") for c in calls] == [None, True]
    assert notes == ["llama.cpp crashed (signal 11) with its extra buffer types (weights repacked for AMX at "
                     "load), so it was measured without them"]


def test_a_process_that_works_at_once_runs_once_with_no_note():
    run, calls = scripted((0, json.dumps(FIGURES), ""))
    notes: list[str] = []
    assert run_llama_cpp_process({}, notes, run) == FIGURES and len(calls) == 1 and notes == []


@pytest.mark.parametrize("outcomes, reason", [
    (((1, "", "Traceback …\nValueError: bad model"),), "ValueError: bad model"),
    (((-11, "", ""), (-11, "", "")), "exit status -11"),
])
def test_a_failure_names_its_reason(outcomes, reason):
    run, _calls = scripted(*outcomes)
    with pytest.raises(RuntimeError, match="the llama.cpp baseline failed: ") as raised:
        run_llama_cpp_process({}, [], run)
    assert str(raised.value).endswith(reason)
