"""Benchmark: hashing throughput of a model registry import against `sha256sum`, on the same 1 GB file.

Builds a 1 GiB safetensors model in a temporary folder, reads it once so both contenders start from the page
cache, then alternates `sha256sum model.safetensors` and a full `Registry.import_model` (inspection, streaming
SHA-256 of every file, the database transaction) into a fresh registry, and prints the best time of each and
their ratio. Python's one-time imports (torch, transformers' tables) happen before the timings. A benchmark, not a test: it prints figures and asserts nothing.

    .venv/bin/python scripts/bench_hashing.py [--size-mib 1024] [--rounds 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.storage.database import open_database  # noqa: E402
from console.registry.registry import Registry  # noqa: E402

BLOCK = 8 * 1024 * 1024


def build_model(folder: Path, size: int) -> Path:
    """config.json and a valid safetensors file holding `size` bytes of random-looking F32 data."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "float32"}))
    header = json.dumps({"weight": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}}).encode()
    header += b" " * (-len(header) % 8)
    block = os.urandom(BLOCK)
    weights = folder / "model.safetensors"
    with weights.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        written = 0
        while written < size:
            # Each block differs from the last, so nothing below can shortcut repeated data.
            chunk = block[: min(BLOCK, size - written)]
            handle.write(written.to_bytes(8, "little") + chunk[8:])
            written += len(chunk)
    return weights


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(BLOCK):
            pass


def time_sha256sum(path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    output = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - started, output.split()[0]


def time_registry_import(folder: Path, work: Path, round_number: int) -> tuple[float, str]:
    database = open_database(work / f"registry-{round_number}.db")
    try:
        registry = Registry(database)
        started = time.perf_counter()
        version = registry.import_model(folder, name="bench")
        elapsed = time.perf_counter() - started
        sha256 = {f.path: f.sha256 for f in registry.files(version.id)}["model.safetensors"]
    finally:
        database.close()
    return elapsed, sha256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the weights file (default 1024 MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternating (default 3)")
    parser.add_argument("--dir", default=None, help="where to build the file (default: the system temp folder)")
    args = parser.parse_args()
    if shutil.which("sha256sum") is None:
        print("error: sha256sum is not installed (coreutils)", file=sys.stderr)
        return 1
    size = args.size_mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="llm-console-bench-", dir=args.dir))
    try:
        print(f"building a {args.size_mib} MiB safetensors model in {work} …", flush=True)
        weights = build_model(work / "model", size)
        warm(weights)
        from engine.weights.inspection import describe_model

        describe_model(work / "model")  # imports torch and transformers' tables once, outside the timings
        total = sum(p.stat().st_size for p in (work / "model").iterdir())
        reference: list[float] = []
        registry: list[float] = []
        for number in range(args.rounds):
            seconds, expected = time_sha256sum(weights)
            reference.append(seconds)
            seconds, found = time_registry_import(work / "model", work, number)
            registry.append(seconds)
            if found != expected:
                print(f"error: the registry recorded {found}, sha256sum says {expected}", file=sys.stderr)
                return 1
            print(f"round {number + 1}: sha256sum {reference[-1]:.2f} s · registry import {registry[-1]:.2f} s", flush=True)
        best_reference, best_registry = min(reference), min(registry)
        reference_rate = weights.stat().st_size / best_reference / 1e6
        registry_rate = total / best_registry / 1e6
        print(f"sha256sum:        {best_reference:.2f} s  {reference_rate:7.0f} MB/s  (best of {args.rounds})")
        print(f"registry import:  {best_registry:.2f} s  {registry_rate:7.0f} MB/s  (best of {args.rounds}; "
              "inspection, hashing every file, database transaction)")
        print(f"ratio: the registry import hashes at {registry_rate / reference_rate * 100:.0f}% of sha256sum's throughput")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
