"""`llm-console users|audit|settings …`: access control, the audit log and settings for admins on SSH."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from console.access.control import PermissionDenied
from console.settings.store import SETTINGS
from console.cli.session import read_new_password
from console.access.permissions import BUILTIN_ROLES, PERMISSIONS


def add_admin_parsers(commands) -> None:
    users = commands.add_parser("users", help="users and roles")
    sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    first = sub.add_parser("create-admin", help="first start only: create the administrator")
    first.add_argument("name")
    sub.add_parser("list", help="every user with their role")
    create = sub.add_parser("create", help="create a user (asks for the password, or reads LLM_CONSOLE_PASSWORD)")
    create.add_argument("name")
    create.add_argument("--role", required=True)
    role = sub.add_parser("set-role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role")
    delete = sub.add_parser("delete", help="delete a user (never the last administrator)")
    delete.add_argument("name")
    reset = sub.add_parser("reset-password", help="set another user's password")
    reset.add_argument("name")
    sub.add_parser("passwd", help="change your own password (LLM_CONSOLE_NEW_PASSWORD for scripts)")
    sub.add_parser("roles", help="roles and their permissions")
    custom = sub.add_parser("create-role", help="a custom role from named permissions")
    custom.add_argument("name")
    custom.add_argument("--permission", action="append", required=True, choices=sorted(PERMISSIONS))
    custom.add_argument("--description", default="")

    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    audit_sub.add_parser("verify", help="check the hash chain; names the first edited or deleted entry")
    listing = audit_sub.add_parser("list", help="entries, newest first")
    listing.add_argument("--actor")
    listing.add_argument("--action", help="action prefix, e.g. auth. or model.load")
    listing.add_argument("--outcome", choices=("ok", "denied", "failed"))
    listing.add_argument("--limit", type=int, default=50)
    export = audit_sub.add_parser("export", help="all entries as CSV")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")

    settings = commands.add_parser("settings", help="show or change settings")
    settings_sub = settings.add_subparsers(dest="settings_command", required=True, metavar="COMMAND")
    settings_sub.add_parser("list", help="every setting with its value")
    change = settings_sub.add_parser("set", help="change a setting; the value is JSON (8, 5.0, true, \"cpu\")")
    change.add_argument("key", choices=[spec.key for spec in SETTINGS])
    change.add_argument("value")


def run_users(args: argparse.Namespace, core) -> int:
    access, session = core.access, core.session
    command = args.users_command
    if command == "list":
        for user in access.users(session):
            print(f"{user.name:<24} {user.role:<12} created {user.created_at[:19]} by {user.created_by}")
    elif command == "create":
        access.create_user(session, args.name, read_new_password(args.name), args.role)
        print(f"Created {args.name} ({args.role}).")
    elif command == "set-role":
        access.set_role(session, args.name, args.role)
        print(f"{args.name} is now {args.role}.")
    elif command == "delete":
        access.delete_user(session, args.name)
        print(f"Deleted {args.name}.")
    elif command == "reset-password":
        access.reset_password(session, args.name, read_new_password(args.name))
        print(f"Password of {args.name} changed.")
    elif command == "passwd":
        import getpass
        import os

        old = os.environ.get("LLM_CONSOLE_PASSWORD") or getpass.getpass("Current password: ")
        new = os.environ.get("LLM_CONSOLE_NEW_PASSWORD") or read_new_password(session.user)
        access.change_password(session, old, new)
        print("Password changed.")
    elif command == "roles":
        for role in access.roles():
            kind = "built-in" if role.builtin else "custom"
            print(f"{role.name:<12} {kind:<9} {', '.join(sorted(role.permissions))}")
    elif command == "create-role":
        access.create_role(session, args.name, set(args.permission), args.description)
        print(f"Created role {args.name}.")
    return 0


def run_audit(args: argparse.Namespace, core) -> int:
    if args.audit_command == "verify":
        result = core.verify_audit()
        if result.ok:
            print(f"The audit log is intact: {result.entries} entries, every hash and link checks out.")
            return 0
        print(f"The audit log was tampered with: {result.problem}.", file=sys.stderr)
        return 1
    if args.audit_command == "list":
        for entry in core.audit_entries(actor=args.actor, action=args.action, outcome=args.outcome, limit=args.limit):
            print(f"{entry.seq:>6} {entry.at[:19]} {entry.actor:<16} {entry.outcome:<7} {entry.action:<22} {entry.target} {entry.details}")
        return 0
    text = core.audit.to_csv(core.audit_entries())
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run_settings(args: argparse.Namespace, core) -> int:
    core.guard.require("settings:view", "read the settings")
    if args.settings_command == "list":
        for spec in SETTINGS:
            mark = "" if core.settings.can_edit(core.session, spec.key) else "  (read-only for you)"
            print(f"{spec.key:<28} {json.dumps(core.settings.get(spec.key)):<14} {spec.label}{mark}")
        return 0
    try:
        value = json.loads(args.value)
    except ValueError:
        value = args.value  # a bare word such as cpu
    stored = core.settings.set(core.session, args.key, value)
    print(f"{args.key} = {json.dumps(stored)}")
    return 0


__all__ = ["add_admin_parsers", "run_users", "run_audit", "run_settings", "PermissionDenied", "BUILTIN_ROLES"]
