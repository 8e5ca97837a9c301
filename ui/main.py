"""Entry point of `llm-console`: the GUI by default, the console CLI for its subcommands (no Qt loaded then)."""

from __future__ import annotations

import sys
from typing import Sequence

from console.cli.main import main as cli_main


def launch_gui(_args) -> int:
    from ui.app import run_app

    return run_app()


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, launch_gui=launch_gui)


if __name__ == "__main__":
    sys.exit(main())
