"""Signing in on the command line: the user from --user or LLM_CONSOLE_USER, the password from
LLM_CONSOLE_PASSWORD (for scripts) or a prompt. Signing in gives the command its principal (channel "cli");
every command acts as that user, through the core's services."""

from __future__ import annotations

import getpass
import os
import sys

from console.access.control import AccessError
from console.access.principal import Principal

USER_VARIABLE = "LLM_CONSOLE_USER"
PASSWORD_VARIABLE = "LLM_CONSOLE_PASSWORD"


def read_new_password(prompt_name: str) -> str:
    """A new password from LLM_CONSOLE_PASSWORD, or typed twice at a terminal."""
    password = os.environ.get(PASSWORD_VARIABLE)
    if password:
        return password
    if not sys.stdin.isatty():
        raise AccessError(f"No terminal to type the password of {prompt_name}: set {PASSWORD_VARIABLE}.")
    first = getpass.getpass(f"New password for {prompt_name}: ")
    if first != getpass.getpass("Type it again: "):
        raise AccessError("The two passwords differ; nothing was changed.")
    return first


def sign_in(core, user: str | None) -> Principal:
    """Sign in and return the command's principal, or raise an AccessError that says what to do."""
    if core.access.needs_first_admin():
        raise AccessError(
            "No administrator exists yet. Create one with `llm-console users create-admin NAME` "
            f"(it asks for a password, or reads {PASSWORD_VARIABLE}), or open the app."
        )
    name = user or os.environ.get(USER_VARIABLE)
    if not name:
        if not sys.stdin.isatty():
            raise AccessError(f"Who is running this? Pass --user NAME or set {USER_VARIABLE} (and {PASSWORD_VARIABLE}).")
        name = input("User: ").strip()
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is None:
        if not sys.stdin.isatty():
            raise AccessError(f"No terminal to type the password of {name}: set {PASSWORD_VARIABLE}.")
        password = getpass.getpass(f"Password for {name}: ")
    return core.sign_in(name, password, channel="cli")
