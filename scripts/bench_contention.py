"""Benchmark: one reply's speed beside a busy core, against the same reply on the idle machine.

Each configuration (thread policy and OpenMP wait policy) runs in a process of its own, since OpenMP reads its
environment once. A process loads the embedded SmolLM2 at the given precision, warms up, then times a greedy
reply of `--new-tokens` tokens idle, beside a busy core (`python3 -c "while True: pass"`, started by the
process and ended after) twice (the first reply after the core went busy, then a second one), and idle again.
Configurations run in interleaved rounds, each figure is the median of its rounds, and every ratio is taken
within one process, a few seconds apart. A benchmark, not a test: it prints figures and asserts nothing.

    .venv/bin/python scripts/bench_contention.py [--precision int8] [--new-tokens 96] [--rounds 3]
        [--configs pinned,adaptive,passive,adaptive+passive,one-thread]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (environment, threads setting: 0 adapts, -1 pins every core, n pins n)
CONFIGS: dict[str, tuple[dict[str, str], int]] = {
    "pinned": ({"OMP_WAIT_POLICY": ""}, -1),  # the old engine: every core, OpenMP's default wait
    "adaptive": ({"OMP_WAIT_POLICY": ""}, 0),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, -1),
    "adaptive+passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0),
    "spin-10k": ({"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"}, -1),
    "adaptive+spin-10k": ({"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"}, 0),
    "one-thread": ({"OMP_WAIT_POLICY": ""}, 1),
}
PHASES = ("idle", "busy_first", "busy_steady", "idle_after")
QUESTION = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def worker(precision: str, threads: int, new_tokens: int, cache: Path) -> dict:
    import torch

    from console.registry.default_model import default_model_path
    from engine import GenerationRequest, InferenceEngine, ModelSpec, SamplingParams
    from engine.batching_settings import BatchingSettings

    setting = torch.get_num_threads() if threads < 0 else threads
    # No response cache: each phase asks the same question again.
    engine = InferenceEngine(cache, settings=BatchingSettings(threads=setting, response_cache=False), compile_decode="off")
    try:
        engine.load(ModelSpec(str(default_model_path()), precision=precision, device="cpu"))

        def reply(tokens: int) -> float:
            params = SamplingParams(temperature=0, max_new_tokens=tokens, ignore_eos=True)
            result = engine.generate(GenerationRequest(messages=QUESTION, params=params), timeout=600)
            return result.completion_tokens / result.total_s  # prefill included, as a user sees it

        reply(16)  # warm-up
        figures = {"idle": reply(new_tokens)}
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            figures["busy_first"] = reply(new_tokens)
            figures["busy_steady"] = reply(new_tokens)
        finally:
            busy.kill()
            busy.wait()
        time.sleep(0.5)
        figures["idle_after"] = reply(new_tokens)
        figures["threads_after"] = engine.snapshot().intra_op_threads
        return figures
    finally:
        engine.shutdown()


def run_config(name: str, args: argparse.Namespace, cache: Path) -> dict:
    environment, threads = CONFIGS[name]
    env = dict(os.environ)
    for key, value in environment.items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    command = [sys.executable, __file__, "--worker", "--precision", args.precision, "--threads", str(threads),
               "--new-tokens", str(args.new_tokens), "--cache", str(cache)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="pinned,adaptive,passive,adaptive+passive,one-thread")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "llm-console-bench-cache"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache = Path(args.cache)
    if args.worker:
        print(json.dumps(worker(args.precision, args.threads, args.new_tokens, cache)))
        return
    names = [name.strip() for name in args.configs.split(",")]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        order = names if round_number % 2 == 0 else names[::-1]  # interleaved, alternating the order
        for name in order:
            runs[name].append(run_config(name, args, cache))
            print(f"round {round_number + 1}: {name} {runs[name][-1]}", file=sys.stderr, flush=True)
    reference = statistics.median(r["idle"] for r in runs[names[0]])
    print(f"{args.precision}, {args.new_tokens} new tokens, {os.cpu_count()} CPUs, median of {args.rounds} rounds "
          f"(tok/s, prefill included; ratios within each process)")
    print(f"{'configuration':<20} {'idle':>7} {'busy 1st':>9} {'busy 2nd':>9} {'idle after':>10} "
          f"{'1st/idle':>9} {'2nd/idle':>9} {f'idle/{names[0]}':>14} threads")
    for name in names:
        rows = runs[name]
        med = {phase: statistics.median(r[phase] for r in rows) for phase in PHASES}
        first = statistics.median(r["busy_first"] / r["idle"] for r in rows)
        steady = statistics.median(r["busy_steady"] / r["idle"] for r in rows)
        print(f"{name:<20} {med['idle']:7.1f} {med['busy_first']:9.1f} {med['busy_steady']:9.1f} "
              f"{med['idle_after']:10.1f} {first:8.2f}x {steady:8.2f}x {med['idle'] / reference:13.2f}x "
              f"{rows[-1]['threads_after']}")


if __name__ == "__main__":
    main()
