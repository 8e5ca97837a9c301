"""The llama.cpp baseline's process: a crash by a signal (llama.cpp's AMX weight repacking, on some CPUs) is run
again without the extra buffer types and noted; any other failure says why."""

from __future__ import annotations

import json
import subprocess

import pytest

from console.bench.runner import LlamaCppWorkaround, run_llama_cpp_process

FIGURES = {"tokens": 8, "seconds": 1.0, "batched": {}, "prefill": {}}


def scripted(*outcomes):
    calls = []

    def run(spec):
        calls.append(spec)
        code, out, err = outcomes[len(calls) - 1]
        return subprocess.CompletedProcess([], code, out, err)

    return run, calls


def test_a_process_killed_by_a_signal_runs_again_without_extra_buffers_and_says_so():
    run, calls = scripted((-11, "", ""), (0, "llama.cpp noise\n" + json.dumps(FIGURES), ""),
                          (0, json.dumps(FIGURES), ""))
    workaround = LlamaCppWorkaround()
    assert run_llama_cpp_process({"gguf_path": "m.gguf"}, workaround, run) == FIGURES
    assert [c.get("no_extra_buffers") for c in calls] == [None, True]
    assert workaround.notes == ["llama.cpp crashed (signal 11) with its extra buffer types (weights repacked for "
                                "AMX at load), so it was measured without them"]
    # the next round goes straight to the workaround: no second crash, no second note
    assert run_llama_cpp_process({"gguf_path": "m.gguf"}, workaround, run) == FIGURES
    assert [c.get("no_extra_buffers") for c in calls] == [None, True, True] and len(workaround.notes) == 1


def test_a_process_that_works_at_once_runs_once_with_no_note():
    run, calls = scripted((0, json.dumps(FIGURES), ""))
    workaround = LlamaCppWorkaround()
    assert run_llama_cpp_process({}, workaround, run) == FIGURES and len(calls) == 1 and workaround.notes == []


@pytest.mark.parametrize("outcomes, reason", [
    (((1, "", "Traceback …\nValueError: bad model"),), "ValueError: bad model"),
    (((-11, "", ""), (-11, "", "")), "exit status -11"),
])
def test_a_failure_names_its_reason(outcomes, reason):
    run, _calls = scripted(*outcomes)
    with pytest.raises(RuntimeError, match="the llama.cpp baseline failed: ") as raised:
        run_llama_cpp_process({}, LlamaCppWorkaround(), run)
    assert str(raised.value).endswith(reason)
