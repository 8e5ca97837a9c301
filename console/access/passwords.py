"""Password hashing with scrypt (memory-hard, from hashlib), per-user salt and stored parameters; the rules."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

from console.errors import ConsoleError

# 16 MiB of memory per hash (128 * r * n bytes): slow to brute-force, ~50 ms here.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**14, 8, 1, 32
MIN_LENGTH = 10
COMMON_PASSWORDS_FILE = "common_passwords.txt"  # in resources/: one a line, lower case; made by
# scripts/make_common_passwords.py from common words, names, keyboard walks, years and number patterns
# A real scrypt hash of a random secret nobody kept: an unknown user name is checked against it, so it costs one
# scrypt like a wrong password (never a match: the caller also requires an account).
DUMMY_HASH = "scrypt$16384$8$1$lhTkbIYncvcYbm7Rhjqxow==$A8bJQ9t1wHEr3UYih2og38TStmkS95XipoLJKm5YW1k="
RULES = (
    f"at least {MIN_LENGTH} characters; not only one repeated character; not the user name; not a common password"
)


class WeakPassword(ConsoleError):
    """The password breaks a rule; the message says which."""


class UndecodableText(ConsoleError):
    """A user name or password holds bytes that are not UTF-8 text (a terminal set to another encoding)."""


@functools.cache
def common_passwords() -> frozenset[str]:
    from resources import resource_path

    lines = resource_path(COMMON_PASSWORDS_FILE).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def printable_text(value: str, what: str) -> str:
    """`value` when it is valid text; UndecodableText when it came from bytes that are not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UndecodableText(f"The {what} contains bytes that are not UTF-8 text. Type it again in a terminal set "
                              "to UTF-8 (check LANG / LC_ALL).") from None
    return value


def check_password_rules(password: str, user_name: str) -> None:
    printable_text(password, "password")
    if not password.strip():
        raise WeakPassword("The password is empty.")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"The password is too short: use at least {MIN_LENGTH} characters.")
    if len(set(password)) == 1:
        raise WeakPassword("The password repeats one character; choose a varied one.")
    if user_name and user_name.lower() in password.lower():
        raise WeakPassword("The password must not contain the user name.")
    if password.lower() in common_passwords():
        raise WeakPassword("That password is on the list of common passwords; choose another.")


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """'scrypt$n$r$p$salt$key': the parameters travel with the hash, so they can be raised later."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_encode(salt)}${_encode(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        found = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(expected), maxmem=256 * 2**20)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)
