"""Password hashing with scrypt (memory-hard, from hashlib), per-user salt and stored parameters; the rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from console.errors import ConsoleError

# 16 MiB of memory per hash (128 * r * n bytes): slow to brute-force, ~50 ms here.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**14, 8, 1, 32
MIN_LENGTH = 10
COMMON_PASSWORDS = frozenset({
    "password", "password1", "password123", "1234567890", "12345678901", "qwertyuiop", "letmein123", "administrator",
    "welcome123", "iloveyou12", "passw0rd123", "changeme123", "admin12345", "0123456789",
})
RULES = (
    f"at least {MIN_LENGTH} characters; not only one repeated character; not the user name; not a common password"
)


class WeakPassword(ConsoleError):
    """The password breaks a rule; the message says which."""


def check_password_rules(password: str, user_name: str) -> None:
    if not password.strip():
        raise WeakPassword("The password is empty.")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"The password is too short: use at least {MIN_LENGTH} characters.")
    if len(set(password)) == 1:
        raise WeakPassword("The password repeats one character; choose a varied one.")
    if user_name and user_name.lower() in password.lower():
        raise WeakPassword("The password must not contain the user name.")
    if password.lower() in COMMON_PASSWORDS:
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
