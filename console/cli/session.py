"""Signing in on the command line: the user from --user or LLM_CONSOLE_USER, the password from
LLM_CONSOLE_PASSWORD (for scripts) or a prompt; passwords being set come from elsewhere (`read_new_password`). Signing in gives the command its principal (channel "cli");
every command acts as that user, through the core's services."""

from __future__ import annotations

import getpass
import os
import sys

from console.access.control import AccessError
from console.access.principal import Principal

USER_VARIABLE = "LLM_CONSOLE_USER"
PASSWORD_VARIABLE = "LLM_CONSOLE_PASSWORD"  # the signer's own password, for sign-in only
NEW_PASSWORD_VARIABLE = "LLM_CONSOLE_NEW_PASSWORD"  # a password being set (new user, reset, change)


def read_new_password(prompt_name: str, from_stdin: bool = False, first_admin: bool = False) -> str:
    """A password being set: from LLM_CONSOLE_NEW_PASSWORD, one line of standard input (`--password-stdin`), or
    typed twice at a terminal. Never the signer's LLM_CONSOLE_PASSWORD, which would hand a new account the
    signer's password; only the first administrator, who has no signer, may take it from there."""
    password = os.environ.get(NEW_PASSWORD_VARIABLE)
    if password:
        return password
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise AccessError(f"Standard input held no password for {prompt_name}; nothing was changed.")
        return password
    if first_admin and os.environ.get(PASSWORD_VARIABLE):
        return os.environ[PASSWORD_VARIABLE]
    if not sys.stdin.isatty():
        raise AccessError(f"No terminal to type the new password of {prompt_name}: set {NEW_PASSWORD_VARIABLE} "
                          "or pass --password-stdin.")
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
    return core.sign_in(name, password, channel="cli")  # UndecodableText when the bytes are not UTF-8
