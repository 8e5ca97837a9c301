"""Throughput at N concurrent users for several engine configurations side by side, in interleaved rounds.

The tuning lab measures one precision after another, so a machine that drifts between two precisions moves
their ratio. This script loads every configuration in an engine of its own, in one process, and runs the lab's
point (N users, distinct greedy prompts, M new tokens, the bench's request driving, response cache off) for
each in turn, round after round; every ratio comes from the same minutes.

    .venv/bin/python scripts/bench_users.py --configs fp32,bf16,bf16:plain,int8 --users 8 --new-tokens 32 --rounds 8

A configuration is a precision, optionally with `:plain` (bf16 weights left unpacked, as before the oneDNN
packing: engine/weights/onednn.py) or `:threads=N` (pinned intra-op threads). The first one is the base of
the ratios. Max batch size is the engine's default (8) unless --max-batch is given.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.bench.runner import drive_level  # noqa: E402
from console.registry.default_model import default_model_path  # noqa: E402
from engine.engine import InferenceEngine  # noqa: E402
from engine.weights import onednn  # noqa: E402
from engine.weights.loader import ModelSpec  # noqa: E402


def load(config: str, model: str, cache: Path, max_batch: int) -> InferenceEngine:
    precision, *options = config.split(":")
    knobs = dict(max_batch_size=max_batch, response_cache=False)
    for option in options:
        if option.startswith("threads="):
            knobs["threads"] = int(option.split("=", 1)[1])
        elif option != "plain":
            raise SystemExit(f"unknown option {option!r} in {config!r}")
    engine = InferenceEngine(cache_dir=cache)
    engine.configure(**knobs)
    previous = onednn._WORKS
    onednn._WORKS = False if "plain" in options else None  # packing happens while the model loads
    try:
        engine.load(ModelSpec(model, precision=precision, device="cpu"))
    finally:
        onednn._WORKS = previous
    return engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="fp32,bf16,int8")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "llm-console-bench"))
    args = parser.parse_args()

    configs = args.configs.split(",")
    engines = {}
    for config in configs:
        engines[config] = load(config, args.model, Path(args.cache_dir), args.max_batch)
        drive_level(engines[config], args.users, 8, "cpu")  # warm-up
        print(f"loaded {config}: {engines[config].model_info.precision_label}", flush=True)
    rates: dict[str, list[float]] = {config: [] for config in configs}
    try:
        for round_ in range(args.rounds):
            for config, engine in engines.items():
                outcome = drive_level(engine, args.users, args.new_tokens, "cpu")
                failed = [r.error for r in outcome.results if not r.ok]
                if failed:
                    raise SystemExit(f"{config}: a request failed: {failed[0]}")
                rates[config].append(sum(r.completion_tokens for r in outcome.results) / outcome.elapsed_s)
            print(f"round {round_ + 1}: " + ", ".join(f"{c} {rates[c][-1]:.1f}" for c in configs), flush=True)
    finally:
        for engine in engines.values():
            engine.shutdown()

    base = statistics.median(rates[configs[0]])
    print(f"\n{args.users} users, {args.new_tokens} new tokens, max batch {args.max_batch}, {args.rounds} interleaved rounds")
    print(f"{'configuration':<18} {'median tok/s':>12} {'min':>7} {'max':>7} {'vs ' + configs[0]:>10} {'per round':>10}")
    for config in configs:
        values = rates[config]
        # the median of the ratios within each round: a round's two figures come from the same minute
        per_round = statistics.median(v / b for v, b in zip(values, rates[configs[0]]))
        print(f"{config:<18} {statistics.median(values):>12.1f} {min(values):>7.1f} {max(values):>7.1f} "
              f"{statistics.median(values) / base:>9.2f}x {per_round:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
