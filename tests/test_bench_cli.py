"""`llm-console bench` end to end on the tiny model: table, ratios to baselines, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_bench_prints_a_table_with_baseline_ratios_and_writes_json(tiny_model_dir, tmp_path, shared_data_dir):
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "console", "bench", "--model", str(tiny_model_dir), "--device", "cpu",
         "--concurrency", "1,3", "--new-tokens", "6", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, LLM_CONSOLE_DATA_DIR=str(shared_data_dir)),
    )
    assert completed.returncode == 0, completed.stderr
    assert "hf-static-batch" in completed.stdout and "hf-generate-sequential" in completed.stdout
    assert "joining a busy engine" in completed.stdout
    report = json.loads(out.read_text())
    assert [run["concurrency"] for run in report["engine_runs"]] == [1, 3]
    assert all(run["output_tokens_per_s"] > 0 for run in report["engine_runs"])
    assert set(report["engine_runs"][1]["ratios"]) == {"hf-generate-sequential", "hf-static-batch"}
    assert "not a GGUF file" in " ".join(report["notes"])


def test_bench_rejects_a_bad_concurrency_list(shared_data_dir):
    completed = subprocess.run(
        [sys.executable, "-m", "console", "bench", "--concurrency", "1,zero"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, LLM_CONSOLE_DATA_DIR=str(shared_data_dir)),
    )
    assert completed.returncode == 2
    assert "--concurrency takes positive whole numbers" in completed.stderr
