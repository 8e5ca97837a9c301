"""`llm-console chat MESSAGE`: ask one question and stream the answer to the terminal."""

from __future__ import annotations

import argparse
import sys

from console.access.principal import Principal
from console.cli.models import chat_load_target
from console.errors import ConsoleError, MemoryWontFit
from engine import EngineError, GenerationRequest, SamplingParams
from engine.request import GenerationFailed
from engine.weights.devices import DEVICES, PRECISIONS


def add_parser(commands) -> None:
    chat = commands.add_parser("chat", help="ask one question and stream the answer to the terminal")
    chat.add_argument("message", help="the question or instruction")
    chat.add_argument("--model", help="GGUF file, Hugging Face folder, or registered NAME[:VERSION] (default: the registry's default model)")
    chat.add_argument("--system", default="You are a helpful assistant.", help="system prompt")
    chat.add_argument("--precision", default="auto", help=f"one of {', '.join(PRECISIONS)} (default auto)")
    chat.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    chat.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy and repeatable")
    chat.add_argument("--top-p", type=float, default=0.95)
    chat.add_argument("--top-k", type=int, default=40)
    chat.add_argument("--repetition-penalty", type=float, default=1.1)
    chat.add_argument("--max-new-tokens", type=int, default=256)
    chat.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    chat.add_argument("--seed", type=int)
    chat.add_argument("--quiet", action="store_true", help="print only the answer, no load progress or figures")
    chat.add_argument("--load-anyway", action="store_true", help="load even when the memory estimate says it will not fit")


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    def report(fraction: float | None, message: str) -> None:
        if not args.quiet:
            percent = f"{fraction * 100:3.0f}%" if fraction is not None else " ..."
            print(f"[{percent}] {message}", file=sys.stderr, flush=True)

    handle = None
    core.compile_override = "off"  # one answer and exit: a background compile would not finish in time to help
    try:
        params = SamplingParams(
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            repetition_penalty=args.repetition_penalty,
            max_new_tokens=args.max_new_tokens,
            stop=tuple(args.stop),
            seed=args.seed,
        )
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.message}
        ]
        GenerationRequest(messages=messages, params=params).validate()  # before a load of seconds, not after
        target = chat_load_target(core, args.model, args.precision, args.device, args.quiet)
        info = core.load(principal, target, report, load_anyway=args.load_anyway)
        if not args.quiet:
            print(f"[model] {info.name} · {info.precision_label} · {info.device} · loaded in {info.load_seconds:.1f} s", file=sys.stderr)
        handle = core.chat(principal, messages, params)
        for piece in handle:
            print(piece, end="", flush=True)
        print()
        result = handle.result()
        if not args.quiet:
            speed = f"{result.tokens_per_second:.1f} tok/s" if result.tokens_per_second else "– tok/s"
            ttft = f"{result.time_to_first_token_s:.2f} s" if result.time_to_first_token_s is not None else "–"
            print(
                f"[{result.completion_tokens} tokens · {speed} · first token {ttft} · {result.finish_reason.label}]",
                file=sys.stderr,
            )
        return 0
    except (EngineError, GenerationFailed, ConsoleError) as error:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, MemoryWontFit):
            print("To load it all the same, add --load-anyway.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if handle is not None:
            handle.cancel()
        print("\n[cancelled]", file=sys.stderr)
        return 130
