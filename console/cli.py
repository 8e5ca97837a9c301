"""The `llm-console` command line: `chat` for admins on SSH; with no command, the GUI (when a launcher is given)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from engine import EngineError, ModelSpec, SamplingParams
from engine.devices import DEVICES, PRECISIONS
from engine.request import GenerationFailed

GuiLauncher = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-console",
        description="Run, test and tune large language models privately on this workstation.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("gui", help="open the desktop window (the default)")

    chat = commands.add_parser("chat", help="ask one question and stream the answer to the terminal")
    chat.add_argument("message", help="the question or instruction")
    chat.add_argument("--model", help="GGUF file or Hugging Face folder (default: the embedded SmolLM2-135M-Instruct)")
    chat.add_argument("--system", default="You are a helpful assistant.", help="system prompt")
    chat.add_argument("--precision", choices=PRECISIONS, default="auto")
    chat.add_argument("--device", choices=DEVICES, default="auto")
    chat.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy and repeatable")
    chat.add_argument("--top-p", type=float, default=0.95)
    chat.add_argument("--top-k", type=int, default=40)
    chat.add_argument("--repetition-penalty", type=float, default=1.1)
    chat.add_argument("--max-new-tokens", type=int, default=256)
    chat.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    chat.add_argument("--seed", type=int)
    chat.add_argument("--quiet", action="store_true", help="print only the answer, no load progress or figures")
    return parser


def run_chat(args: argparse.Namespace) -> int:
    from console.core import ConsoleCore

    def report(fraction: float | None, message: str) -> None:
        if not args.quiet:
            percent = f"{fraction * 100:3.0f}%" if fraction is not None else " ..."
            print(f"[{percent}] {message}", file=sys.stderr, flush=True)

    core = ConsoleCore()
    handle = None
    try:
        spec = (
            ModelSpec(args.model, precision=args.precision, device=args.device)
            if args.model
            else core.default_model_spec(args.precision, args.device)
        )
        info = core.load_model(spec, report)
        if not args.quiet:
            print(f"[model] {info.name} · {info.precision} · {info.device} · loaded in {info.load_seconds:.1f} s", file=sys.stderr)
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
        handle = core.chat(messages, params)
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
    except (EngineError, GenerationFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if handle is not None:
            handle.cancel()
        print("\n[cancelled]", file=sys.stderr)
        return 130
    finally:
        core.shutdown()


def main(argv: Sequence[str] | None = None, launch_gui: GuiLauncher | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "chat":
        return run_chat(args)
    if launch_gui is None:
        print("error: the desktop window is started by the `llm-console` command (package ui).", file=sys.stderr)
        return 2
    return launch_gui(args)


if __name__ == "__main__":
    sys.exit(main())
