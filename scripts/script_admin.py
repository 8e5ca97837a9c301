"""The administrator a measuring or screenshot script signs in as, on a data directory of the script's own.

The window's panels need a principal; the user's real data directory is never touched. The first run creates
the account, later runs sign in to it.
"""

from __future__ import annotations


def script_admin(core, user: str, password: str):
    from console.access.control import UserError

    try:
        return core.create_first_admin(user, password)
    except UserError:  # a previous run created it
        return core.sign_in(user, password)
