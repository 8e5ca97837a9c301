"""`llm-console bench`: measure throughput and latency against baselines on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from console.access.principal import Principal
from engine import EngineError, ModelSpec
from engine.compile_settings import COMPILE_MODES
from engine.weights.devices import DEVICES, PRECISIONS


def add_parser(commands) -> None:
    bench = commands.add_parser("bench", help="measure throughput and latency against baselines on this machine")
    source = bench.add_mutually_exclusive_group()
    source.add_argument("--model", help="GGUF file or Hugging Face folder (default: the embedded SmolLM2-135M-Instruct)")
    source.add_argument("--random-model", metavar="SHAPE", help="random weights of a known shape, built on the device (qwen2-1.5b)")
    bench.add_argument("--precision", default="auto", help=f"one of {', '.join(PRECISIONS)} (default auto)")
    bench.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    bench.add_argument("--concurrency", default="1,4,8,32", help="comma-separated concurrency levels (default 1,4,8,32)")
    bench.add_argument("--new-tokens", type=int, default=128, help="tokens generated per request (default 128)")
    bench.add_argument("--no-baselines", action="store_true", help="skip the Hugging Face and llama.cpp baselines")
    bench.add_argument("--max-wait-ms", type=float, help="engine knob: how long an idle engine waits to fill a batch")
    bench.add_argument("--max-prefill-tokens", type=int, help="engine knob: prompt tokens prefilled per step")
    bench.add_argument("--decoder", choices=("lean", "transformers"), default="lean",
                       help="forward pass: the lean decoder (default; Llama-family models) or transformers' own")
    bench.add_argument("--compile", choices=COMPILE_MODES,
                       help="torch.compile the lean decode step (default: the engine.compile setting, auto = GPU only)")
    bench.add_argument("--repeat", type=int, default=3,
                       help="rounds of engine and baselines, interleaved; each figure is the median (default 3)")
    bench.add_argument("--prompt-tokens", default="512,2048", metavar="N,N",
                       help="long-prompt case: prefill tok/s and time to first token at these prompt lengths "
                            "(default 512,2048; 0 skips it)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    from console.bench.runner import write_json

    try:
        levels = sorted({int(level) for level in args.concurrency.split(",")})
        if not levels or levels[0] < 1:
            raise ValueError
    except ValueError:
        print(f"error: --concurrency takes positive whole numbers separated by commas (got {args.concurrency!r})", file=sys.stderr)
        return 2
    try:
        prompt_lengths = sorted({int(n) for n in args.prompt_tokens.split(",") if int(n) > 0})
    except ValueError:
        print(f"error: --prompt-tokens takes whole numbers separated by commas (got {args.prompt_tokens!r})", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print(f"error: --repeat takes a whole number of rounds, 1 or more (got {args.repeat})", file=sys.stderr)
        return 2
    core.use_lean_decoder(principal, args.decoder == "lean")
    core.compile_override = args.compile
    try:
        gguf_path = None
        if args.random_model:
            # the embedded model's tokenizer drives the random model
            name = core.load_random_model(principal, args.random_model, core.default_model_spec("fp32", "cpu"),
                                          args.device, args.precision)
            print(f"[model] random {args.random_model} (tokenizer of {name})", file=sys.stderr)
        else:
            spec = (ModelSpec(args.model, precision=args.precision, device=args.device) if args.model
                    else core.default_model_spec(args.precision, args.device))
            info = core.load_model(principal, spec)
            gguf_path = info.path if info.format == "gguf" else None
        knobs = {k: v for k, v in (("max_wait_ms", args.max_wait_ms), ("max_prefill_tokens", args.max_prefill_tokens)) if v is not None}
        if knobs:
            core.configure_engine(principal, **knobs)
        report = core.benchmark(principal, levels, args.new_tokens, baselines=not args.no_baselines,
                                gguf_path=gguf_path, repeat=args.repeat, prompt_lengths=prompt_lengths,
                                report=lambda message: print(f"[bench] {message}", file=sys.stderr, flush=True))
        print(report.format_table())
        if args.json:
            write_json(report, Path(args.json))
            print(f"[bench] wrote {args.json}", file=sys.stderr)
        return 0
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
