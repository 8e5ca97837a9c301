"""`llm-console settings …`: show or change the settings, each change checked and audited by the store."""

from __future__ import annotations

import argparse
import json

from console.access.principal import Principal
from console.settings.store import SETTINGS


def add_parser(commands) -> None:
    settings = commands.add_parser("settings", help="show or change settings")
    settings_sub = settings.add_subparsers(dest="settings_command", required=True, metavar="COMMAND")
    settings_sub.add_parser("list", help="every setting with its value")
    change = settings_sub.add_parser("set", help="change a setting; the value is JSON (8, 5.0, true, \"cpu\")")
    change.add_argument("key", choices=[spec.key for spec in SETTINGS])
    change.add_argument("value")


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    values = core.settings.view(principal)  # both commands need `settings:view`
    if args.settings_command == "list":
        for spec in SETTINGS:
            mark = "" if core.settings.can_edit(principal, spec.key) else "  (read-only for you)"
            print(f"{spec.key:<28} {json.dumps(values[spec.key]):<14} {spec.label}{mark}")
        return 0
    try:
        value = json.loads(args.value)
    except ValueError:
        value = args.value  # a bare word such as cpu
    stored = core.settings.set(principal, args.key, value)
    print(f"{args.key} = {json.dumps(stored)}")
    return 0
