"""`llm-console bench` end to end on the tiny model: table, ratios to baselines, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_bench_prints_a_table_with_baseline_ratios_and_writes_json(tiny_model_dir, tmp_path, shared_data_dir):
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "console", "bench", "--model", str(tiny_model_dir), "--device", "cpu",
         "--concurrency", "1,3", "--new-tokens", "6", "--repeat", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, LLM_CONSOLE_DATA_DIR=str(shared_data_dir)),
    )
    assert completed.returncode == 0, completed.stderr
    assert "hf-static-batch" in completed.stdout and "hf-generate-sequential" in completed.stdout
    assert "joining a busy engine" in completed.stdout
    assert "median of 2 interleaved rounds" in completed.stdout and "round 2/2: baseline" in completed.stderr
    report = json.loads(out.read_text())
    assert [run["concurrency"] for run in report["engine_runs"]] == [1, 3]
    assert all(run["output_tokens_per_s"] > 0 for run in report["engine_runs"])
    assert set(report["engine_runs"][1]["ratios"]) == {"hf-generate-sequential", "hf-static-batch"}
    assert "not a GGUF file" in " ".join(report["notes"])
    # `auto` may pick bf16 on an AMX CPU, whose weights the lean decoder then packs
    packed = report["precision"].startswith("bf16")
    assert report["rounds"] == 2 and report["decoder"] == ("lean, bf16 packed for oneDNN" if packed else "lean")


def test_bench_measures_long_prompts_and_skips_those_past_the_context(tiny_model_dir, tmp_path, shared_data_dir):
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "console", "bench", "--model", str(tiny_model_dir), "--device", "cpu",
         "--concurrency", "1", "--new-tokens", "4", "--repeat", "1", "--no-baselines",
         "--prompt-tokens", "256,2048", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, LLM_CONSOLE_DATA_DIR=str(shared_data_dir)),
    )
    assert completed.returncode == 0, completed.stderr
    assert "Long prompts" in completed.stdout
    report = json.loads(out.read_text())
    (run,) = report["prefill_runs"]
    assert 240 <= run["prompt_tokens"] <= 270 and run["prefill_tokens_per_s"] > 0 and run["ttft_s"] > 0
    assert "prompts of 2048 tokens do not fit the model's context of 2,048: skipped" in report["notes"]


def test_each_figure_is_the_median_round():
    from console.bench.runner import BaselineRun, _median

    runs = [BaselineRun("x", 1, speed) for speed in (90.0, 150.0, 100.0)]
    assert _median(runs).output_tokens_per_s == 100.0
    assert _median(runs[:2]).output_tokens_per_s == 90.0  # the lower of the two middle ones


@pytest.mark.parametrize("arguments, message", [
    (["--repeat", "0"], "--repeat takes a whole number of rounds"),
    (["--concurrency", "1,zero"], "--concurrency takes positive whole numbers"),
])
def test_bench_rejects_bad_arguments(arguments, message, shared_data_dir):
    completed = subprocess.run(
        [sys.executable, "-m", "console", "bench", *arguments],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, LLM_CONSOLE_DATA_DIR=str(shared_data_dir)),
    )
    assert completed.returncode == 2
    assert message in completed.stderr


def test_the_joining_request_shares_the_batch_even_when_the_run_was_at_concurrency_one(tiny_engine):
    """A run at concurrency 1 sets the max batch size to 1; the join measurement queued behind its 7 background
    requests then (4.8 s against 0.12 s idle for SmolLM2 int4) instead of joining them."""
    from console.bench.runner import measure_join_ttft

    tiny_engine.configure(max_batch_size=1, queue_limit=4)
    idle, busy, running = measure_join_ttft(tiny_engine, new_tokens=4)
    assert running == 8  # the 7 background requests and the joiner, in one batch
    assert idle > 0 and busy > 0
    assert (tiny_engine.settings.max_batch_size, tiny_engine.settings.queue_limit) == (1, 4)
