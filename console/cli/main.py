"""The `llm-console` command line: `chat` and `models` for admins on SSH; with no command, the GUI (when a launcher is given)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from console.cli.admin import add_admin_parsers, run_audit, run_settings, run_users
from console.errors import ConsoleError
from console.cli.models import add_models_parser, chat_load_target, run_models
from console.cli.self_test import add_self_test_parser, run_self_test
from engine import EngineError, ModelSpec, SamplingParams
from engine.weights.devices import DEVICES, PRECISIONS
from engine.scheduler import COMPILE_MODES
from engine.request import GenerationFailed

GuiLauncher = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-console",
        description="Run, test and tune large language models privately on this workstation.",
    )
    parser.add_argument("--user", help="sign in as this user (or set LLM_CONSOLE_USER; the password comes from "
                                       "LLM_CONSOLE_PASSWORD or a prompt)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("gui", help="open the desktop window (the default)")

    chat = commands.add_parser("chat", help="ask one question and stream the answer to the terminal")
    chat.add_argument("message", help="the question or instruction")
    chat.add_argument("--model", help="GGUF file, Hugging Face folder, or registered NAME[:VERSION] (default: the registry's default model)")
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

    bench = commands.add_parser("bench", help="measure throughput and latency against baselines on this machine")
    source = bench.add_mutually_exclusive_group()
    source.add_argument("--model", help="GGUF file or Hugging Face folder (default: the embedded SmolLM2-135M-Instruct)")
    source.add_argument("--random-model", metavar="SHAPE", help="random weights of a known shape, built on the device (qwen2-1.5b)")
    bench.add_argument("--precision", choices=PRECISIONS, default="auto")
    bench.add_argument("--device", choices=DEVICES, default="auto")
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
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    add_models_parser(commands)
    add_admin_parsers(commands)
    add_self_test_parser(commands)
    return parser


def run_chat(args: argparse.Namespace, core) -> int:
    def report(fraction: float | None, message: str) -> None:
        if not args.quiet:
            percent = f"{fraction * 100:3.0f}%" if fraction is not None else " ..."
            print(f"[{percent}] {message}", file=sys.stderr, flush=True)

    handle = None
    core.compile_override = "off"  # one answer and exit: a background compile would not finish in time to help
    try:
        info = core.load(chat_load_target(core, args.model, args.precision, args.device, args.quiet), report)
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
    except (EngineError, GenerationFailed, ConsoleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if handle is not None:
            handle.cancel()
        print("\n[cancelled]", file=sys.stderr)
        return 130


def run_bench(args: argparse.Namespace, core) -> int:
    from pathlib import Path

    from console.bench.runner import write_json

    try:
        levels = sorted({int(level) for level in args.concurrency.split(",")})
        if not levels or levels[0] < 1:
            raise ValueError
    except ValueError:
        print(f"error: --concurrency takes positive whole numbers separated by commas (got {args.concurrency!r})", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print(f"error: --repeat takes a whole number of rounds, 1 or more (got {args.repeat})", file=sys.stderr)
        return 2
    core.engine.lean_decoder = args.decoder == "lean"
    core.compile_override = args.compile
    try:
        gguf_path = None
        if args.random_model:
            default = core.load_model(core.default_model_spec("fp32", "cpu"))  # its tokenizer drives the random model
            tokenizer = core.engine.run_on_model(lambda loaded: loaded.tokenizer)
            core.unload_model()
            print(f"[model] random {args.random_model} (tokenizer of {default.name})", file=sys.stderr)
            core.engine.compile_decode = core.compile_mode()
            core.engine.load_random(args.random_model, tokenizer, args.device, args.precision)
        else:
            spec = (ModelSpec(args.model, precision=args.precision, device=args.device) if args.model
                    else core.default_model_spec(args.precision, args.device))
            info = core.load_model(spec)
            gguf_path = info.path if info.format == "gguf" else None
        knobs = {k: v for k, v in (("max_wait_ms", args.max_wait_ms), ("max_prefill_tokens", args.max_prefill_tokens)) if v is not None}
        if knobs:
            core.configure_engine(**knobs)
        report = core.benchmark(levels, args.new_tokens, baselines=not args.no_baselines, gguf_path=gguf_path,
                                repeat=args.repeat,
                                report=lambda message: print(f"[bench] {message}", file=sys.stderr, flush=True))
        print(report.format_table())
        if args.json:
            write_json(report, Path(args.json))
            print(f"[bench] wrote {args.json}", file=sys.stderr)
        return 0
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


COMMANDS = {"chat": run_chat, "bench": run_bench, "models": run_models, "users": run_users, "audit": run_audit,
            "settings": run_settings}


def run_signed_in(args: argparse.Namespace) -> int:
    """Open the app's core, sign in (or, for `users create-admin`, create the first admin), run the command."""
    from console.cli.session import read_new_password, sign_in
    from console.core import ConsoleCore

    try:
        core = ConsoleCore()
    except ConsoleError as error:  # the database cannot be opened
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        if args.command == "users" and args.users_command == "create-admin":
            core.create_first_admin(args.name, read_new_password(args.name))
            print(f"Created the administrator {args.name}.")
            return 0
        sign_in(core, args.user)
        return COMMANDS[args.command](args, core)
    except (ConsoleError, EngineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        core.sign_out("command finished")
        core.shutdown()


def main(argv: Sequence[str] | None = None, launch_gui: GuiLauncher | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in COMMANDS:
        return run_signed_in(args)
    if args.command == "self-test":  # signs nobody in: it runs before the first account exists
        return run_self_test(args, launch_gui)
    if launch_gui is None:
        print("error: the desktop window is started by the `llm-console` command (package ui).", file=sys.stderr)
        return 2
    return launch_gui(args)


if __name__ == "__main__":
    sys.exit(main())
