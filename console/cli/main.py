"""The `llm-console` command line: the parser and the dispatch to one module per command group (`chat`, `bench`,
`models`, `users`, `audit`, `settings`); with no command, the GUI (when a launcher is given). Each command
signs in first and receives the principal it acts for."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from console.cli import api_keys, audit, bench, chat, lab, models, serve, settings, users
from console.errors import ConsoleError
from console.cli.self_test import add_self_test_parser, run_self_test
from engine import EngineError
from engine.weights.devices import DEVICES, PRECISIONS

GuiLauncher = Callable[[argparse.Namespace], int]
COMMANDS = {"chat": chat, "bench": bench, "models": models, "users": users, "audit": audit, "settings": settings,
            "serve": serve, "api-keys": api_keys,
            "lab": lab}
MAX_LIMIT = 1_000_000  # --limit: rows to list


def argument_problem(args: argparse.Namespace) -> str | None:
    """What argparse lets through that would fail later: after a long model load, or deep inside SQLite."""
    for option, choices in (("precision", PRECISIONS), ("device", DEVICES)):
        value = getattr(args, option, None)
        if value is not None and value not in choices:
            return f"--{option} {value!r} is not one this console knows. Choose one of: {', '.join(choices)}."
    limit = getattr(args, "limit", None)
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        return f"--limit must be a whole number from 1 to {MAX_LIMIT:,} (got {limit})."
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-console",
        description="Run, test and tune large language models privately on this workstation.",
    )
    parser.add_argument("--user", help="sign in as this user (or set LLM_CONSOLE_USER; the password comes from "
                                       "LLM_CONSOLE_PASSWORD or a prompt)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("gui", help="open the desktop window (the default)")
    for group in COMMANDS.values():
        group.add_parser(commands)
    add_self_test_parser(commands)
    return parser


def run_signed_in(args: argparse.Namespace) -> int:
    """Open the app's core, sign in (or, for `users create-admin`, create the first admin), run the command."""
    from console.cli.session import sign_in
    from console.core import ConsoleCore

    try:
        core = ConsoleCore()
    except ConsoleError as error:  # the database cannot be opened
        print(f"error: {error}", file=sys.stderr)
        return 1
    principal = None
    try:
        if args.command == "users" and args.users_command == "create-admin":
            principal = users.create_first_admin(args, core)
            return 0
        principal = sign_in(core, args.user)
        return COMMANDS[args.command].run(args, core, principal)
    except (ConsoleError, EngineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        core.sign_out(principal, "command finished")
        core.shutdown()


def main(argv: Sequence[str] | None = None, launch_gui: GuiLauncher | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = argument_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
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
