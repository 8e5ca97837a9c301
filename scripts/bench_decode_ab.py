"""The lean decoder's decode step now against an earlier commit's, in one process, interleaved round by round.

A change to the decode step is judged by its speed on a VM that drifts by 20 % within minutes, so both
versions must run in the same minutes. This script extracts `engine/` of an earlier commit (git archive) into
a temporary package named `engine_base`, loads the embedded model through each version, and times each
decoder's step for the same rows in alternate rounds. It also compares the two versions' logits: a speed-up
that changes what the model computes shows here.

    .venv/bin/python scripts/bench_decode_ab.py --against HEAD~1 --precision int4 --rows 1 --rounds 10
    .venv/bin/python scripts/bench_decode_ab.py --against HEAD~1 --precision int4 --prefill 1x40,8x30,1x512

It prints the minimum and median milliseconds per step of each version, the median of the per-round ratios
(above 1: now is faster), and the largest logit difference. `--prefill ROWSxTOKENS,...` times the prefill of
that many prompts of that many tokens instead of a decode step.
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from console.registry.default_model import default_model_path  # noqa: E402


def extract_engine(commit: str, into: Path) -> None:
    """`engine/` of `commit`, as the package `engine_base` (its absolute imports renamed) under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "engine"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "engine").rename(into / "engine_base")
    for source in (into / "engine_base").rglob("*.py"):
        text = source.read_text()
        source.write_text(re.sub(r"\b(from|import) engine(?=[\s.])", r"\1 engine_base", text))


def decoder(package: str, precision: str, cache_dir: Path):
    loader = __import__(f"{package}.weights.loader", fromlist=["load_model"])
    lean = __import__(f"{package}.forward.lean_decoder", fromlist=["LeanDecoder"])
    loaded = loader.load_model(loader.ModelSpec(str(default_model_path()), precision=precision, device="cpu"), cache_dir)
    return lean.LeanDecoder(loaded.model)


def report(decoders: dict, args: argparse.Namespace) -> None:
    prompts = [[1 + (j * 7 + row) % 500 for j in range(40 + row)] for row in range(args.rows)]

    def run(lean, steps: int) -> tuple[float, torch.Tensor]:
        lean.cache = lean._new_cache()
        lean.prefill(prompts)
        started = time.perf_counter()
        for _ in range(steps):
            logits = lean.decode([5] * args.rows)
        return (time.perf_counter() - started) / steps * 1000, logits

    if args.prefill:
        report_prefill(decoders, args)
        return
    for lean in decoders.values():
        run(lean, 4)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in decoders}
    last = {}
    for _ in range(args.rounds):
        for name, lean in decoders.items():
            milliseconds, last[name] = run(lean, args.steps)
            times[name].append(milliseconds)
    print(f"{args.precision}, {args.rows} row(s), {args.steps} steps x {args.rounds} interleaved rounds, "
          f"{torch.get_num_threads()} threads; now = working tree, before = {args.against}")
    for name, values in times.items():
        print(f"  {name:6s} ms/step  min {min(values):7.2f}  median {statistics.median(values):7.2f}")
    ratios = [before / now for before, now in zip(times["before"], times["now"])]
    difference = (last["before"].float() - last["now"].float()).abs().max().item()
    print(f"  speed-up (median of per-round ratios) {statistics.median(ratios):.3f}x; "
          f"largest logit difference {difference:.3g}")


def report_prefill(decoders: dict, args: argparse.Namespace) -> None:
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.prefill.split(",")]
    print(f"{args.precision} prefill, {args.rounds} interleaved rounds, {torch.get_num_threads()} threads; "
          f"now = working tree, before = {args.against}")
    for rows, tokens in shapes:
        prompts = [[1 + (j * 7 + row) % 500 for j in range(tokens)] for row in range(rows)]
        times: dict[str, list[float]] = {name: [] for name in decoders}
        last = {}
        for round_number in range(args.rounds + 1):  # the first round warms up
            for name, lean in decoders.items():
                lean.cache = lean._new_cache()
                started = time.perf_counter()
                last[name] = lean.prefill(prompts)
                if round_number:
                    times[name].append((time.perf_counter() - started) * 1000)
        ratios = [before / now for before, now in zip(times["before"], times["now"])]
        difference = (last["before"].float() - last["now"].float()).abs().max().item()
        same = torch.equal(last["before"].argmax(-1), last["now"].argmax(-1))
        print(f"  {rows} x {tokens} tokens: before min {min(times['before']):7.1f} ms, now min {min(times['now']):7.1f} ms; "
              f"speed-up (median of per-round ratios) {statistics.median(ratios):.2f}x; largest logit difference "
              f"{difference:.3g}, next tokens {'the same' if same else 'DIFFERENT'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="the earlier commit (default HEAD~1)")
    parser.add_argument("--precision", default="int4")
    parser.add_argument("--rows", type=int, default=1, help="sequences decoded together (default 1)")
    parser.add_argument("--steps", type=int, default=16, help="decode steps per round (default 16)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (default: torch's)")
    parser.add_argument("--prefill", metavar="ROWSxTOKENS,...", help="time prefills of these shapes instead (e.g. 8x30,1x512)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "llm-console-bench")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:  # kept to the end: engine_base may import lazily
        extract_engine(args.against, Path(folder))
        sys.path.insert(0, folder)
        decoders = {"before": decoder("engine_base", args.precision, args.cache_dir),
                    "now": decoder("engine", args.precision, args.cache_dir)}
        report(decoders, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
