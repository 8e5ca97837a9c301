"""Entry point of `llm-console`: the GUI by default, the console CLI for its subcommands (no Qt loaded then)."""

from __future__ import annotations

import sys
from typing import Sequence

from console.cli.main import main as cli_main


def launch_gui(args) -> int:
    if getattr(args, "qt_probe", False):  # `self-test` checks Qt in a child process: a broken plugin aborts
        from ui.platform_probe import probe_platform

        return probe_platform()
    from ui.app import run_app

    return run_app()


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, launch_gui=launch_gui)


if __name__ == "__main__":
    sys.exit(main())
