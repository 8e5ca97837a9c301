"""Development aid: the memory estimate's weights against the weight memory a real load measures, for every
precision of the embedded model and of the random qwen2-1.5b shape (built on the device: about 7 GB at fp32).

    .venv/bin/python scripts/check_memory_estimate.py [--device cpu] [--shapes embedded,qwen2-1.5b]

Prints one row per (model, precision) with the estimate, the measurement and their ratio; exits 1 when a row is
outside ±15 %.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.registry.default_model import default_model_path  # noqa: E402
from engine import InferenceEngine, ModelSpec  # noqa: E402
from engine.weights.memory_estimate import estimate_load, read_model_shape, shape_from_config  # noqa: E402
from engine.weights.random_models import SHAPES  # noqa: E402

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int4")
TOLERANCE = 0.15


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shapes", default="embedded,qwen2-1.5b")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    args = parser.parse_args()
    engine = InferenceEngine(cache_dir=Path(tempfile.gettempdir()) / "llm-console-estimate-check", compile_decode="off")
    worst = 0.0
    print(f"{'model':<12} {'precision':<9} {'estimated':>12} {'measured':>12} {'ratio':>7}")
    try:
        engine.load(ModelSpec(str(default_model_path()), precision="fp32", device=args.device))
        tokenizer = engine.run_on_model(lambda loaded: loaded.tokenizer)
        for shape_name in args.shapes.split(","):
            for precision in args.precisions.split(","):
                engine.unload()
                gc.collect()
                if shape_name == "embedded":
                    shape = read_model_shape(default_model_path())
                    info = engine.load(ModelSpec(str(default_model_path()), precision=precision, device=args.device))
                else:
                    shape = shape_from_config(SHAPES[shape_name])
                    info = engine.load_random(shape_name, tokenizer, args.device, precision)
                estimated = estimate_load(shape, precision, args.device).weight_bytes
                ratio = estimated / info.weight_bytes
                worst = max(worst, abs(ratio - 1))
                print(f"{shape_name:<12} {precision:<9} {estimated / 1e6:>9.1f} MB {info.weight_bytes / 1e6:>9.1f} MB "
                      f"{ratio:>7.3f}", flush=True)
    finally:
        engine.shutdown()
    print(f"largest difference: {worst * 100:.2f} % (target ±{TOLERANCE * 100:.0f} %)")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
