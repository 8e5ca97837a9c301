"""`llm-console api-keys create|list|revoke|usage`: API keys, each acting as a user (so with that user's role).
The secret is printed once, to standard output; every create and revoke is audited."""

from __future__ import annotations

import argparse
import sys

from console.access.principal import Principal
from console.storage.timestamps import local_time


def add_parser(commands) -> None:
    keys = commands.add_parser("api-keys", help="API keys: each acts as a user, with that user's role")
    sub = keys.add_subparsers(dest="api_keys_command", required=True, metavar="COMMAND")
    create = sub.add_parser("create", help="a new key for USER; the secret is printed once")
    create.add_argument("key_user", metavar="USER", help="the user the key acts as (so with that user's role)")
    create.add_argument("--name", required=True, help="a label to tell the key apart (\"grafana\", \"notebook\")")
    create.add_argument("--expires", type=float, metavar="DAYS", help="expire after this many days (default: never)")
    sub.add_parser("list", help="every key with its state and today's usage")
    revoke = sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("id", type=int)
    usage = sub.add_parser("usage", help="one key's requests, tokens and errors per day")
    usage.add_argument("id", type=int)


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    keys = core.api.keys
    command = args.api_keys_command
    if command == "create":
        created = keys.create(principal, args.key_user, args.name, args.expires)
        print(created.secret)
        expiry = f", expires {local_time(created.key.expires_at)}" if created.key.expires_at else ""
        print(f"Created API key {created.key.id} '{created.key.name}' for {created.key.user}{expiry}. The secret above "
              "is shown only now: store it.", file=sys.stderr)
    elif command == "list":
        listed = keys.keys(principal)
        if not listed:
            print("No API keys. Create one with: llm-console api-keys create USER --name LABEL")
            return 0
        usage = core.api.usage.usage()
        print(f"{'ID':>4}  {'NAME':<20} {'USER':<14} {'KEY':<14} {'STATE':<8} {'CREATED':<17} {'EXPIRES':<17} "
              f"{'LAST USED':<17} TODAY (requests, tokens in/out, errors)")
        for key in listed:
            day = usage.get(key.id)
            figures = (f"{day.requests}, {day.prompt_tokens}/{day.completion_tokens}, {day.errors}" if day else "–")
            print(f"{key.id:>4}  {key.name:<20} {key.user:<14} {key.prefix + '…':<14} {key.state:<8} "
                  f"{local_time(key.created_at):<17} {local_time(key.expires_at):<17} {local_time(key.last_used_at):<17} "
                  f"{figures}")
    elif command == "revoke":
        key = keys.revoke(principal, args.id)
        print(f"Revoked API key {key.id} '{key.name}' of {key.user}.")
    elif command == "usage":
        keys.keys(principal)  # the same permission as listing them
        rows = core.api.usage.history(args.id)
        if not rows:
            print(f"API key {args.id} has no recorded use.")
        for row in rows:
            print(f"{row.day}  {row.requests:>7} requests  {row.prompt_tokens:>9} prompt tokens  "
                  f"{row.completion_tokens:>9} completion tokens  {row.errors:>5} errors")
    return 0
