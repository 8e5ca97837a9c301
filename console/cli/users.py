"""`llm-console users …`: users and roles for admins on SSH, through the same service as the Settings tab."""

from __future__ import annotations

import argparse
import getpass
import os

from console.access.permissions import PERMISSIONS
from console.access.principal import Principal
from console.cli.session import PASSWORD_VARIABLE, read_new_password


def add_parser(commands) -> None:
    users = commands.add_parser("users", help="users and roles")
    sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    first = sub.add_parser("create-admin", help="first start only: create the administrator (password from "
                                                "LLM_CONSOLE_NEW_PASSWORD, LLM_CONSOLE_PASSWORD, stdin or a prompt)")
    first.add_argument("name")
    sub.add_parser("list", help="every user with their role")
    create = sub.add_parser("create", help="create a user (asks for the password, or reads LLM_CONSOLE_NEW_PASSWORD "
                                           "or, with --password-stdin, one line of standard input)")
    create.add_argument("name")
    create.add_argument("--role", required=True)
    role = sub.add_parser("set-role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role")
    delete = sub.add_parser("delete", help="delete a user (never the last administrator)")
    delete.add_argument("name")
    reset = sub.add_parser("reset-password", help="set another user's password (as for create)")
    reset.add_argument("name")
    passwd = sub.add_parser("passwd", help="change your own password (LLM_CONSOLE_NEW_PASSWORD for scripts)")
    for command in (first, create, reset, passwd):
        command.add_argument("--password-stdin", action="store_true",
                             help="read the new password from the first line of standard input")
    sub.add_parser("roles", help="roles and their permissions")
    custom = sub.add_parser("create-role", help="a custom role from named permissions")
    custom.add_argument("name")
    custom.add_argument("--permission", action="append", required=True, choices=sorted(PERMISSIONS))
    custom.add_argument("--description", default="")


def create_first_admin(args: argparse.Namespace, core) -> Principal:
    """`users create-admin NAME`: the one command that runs before anyone can sign in."""
    password = read_new_password(args.name, args.password_stdin, first_admin=True)
    principal = core.create_first_admin(args.name, password, channel="cli")
    print(f"Created the administrator {args.name}.")
    return principal


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    access = core.access
    command = args.users_command
    if command == "list":
        for user in access.users(principal):
            print(f"{user.name:<24} {user.role:<12} created {user.created_at[:19]} by {user.created_by}")
    elif command == "create":
        access.create_user(principal, args.name, read_new_password(args.name, args.password_stdin), args.role)
        print(f"Created {args.name} ({args.role}).")
    elif command == "set-role":
        access.set_role(principal, args.name, args.role)
        print(f"{args.name} is now {args.role}.")
    elif command == "delete":
        access.delete_user(principal, args.name)
        print(f"Deleted {args.name}.")
    elif command == "reset-password":
        access.reset_password(principal, args.name, read_new_password(args.name, args.password_stdin))
        print(f"Password of {args.name} changed.")
    elif command == "passwd":
        old = os.environ.get(PASSWORD_VARIABLE) or getpass.getpass("Current password: ")
        new = read_new_password(principal.user, args.password_stdin)
        access.change_password(principal, old, new)
        print("Password changed.")
    elif command == "roles":
        for role in access.roles():
            kind = "built-in" if role.builtin else "custom"
            print(f"{role.name:<12} {kind:<9} {', '.join(sorted(role.permissions))}")
    elif command == "create-role":
        access.create_role(principal, args.name, set(args.permission), args.description)
        print(f"Created role {args.name}.")
    return 0
