"""API keys: each one acts as a user (so with that user's role), is shown once when created and stored only as
a SHA-256 of its secret. Creating and revoking a key needs `users:manage` and is audited; resolving a secret
is what every API request does first (`console/api/app.py`).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from console.access.guard import Guard
from console.access.permissions import Permission
from console.access.principal import Principal
from console.errors import ConsoleError
from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso, parse_iso

SECRET_PREFIX = "llmc_"
SHOWN_PREFIX_LENGTH = len(SECRET_PREFIX) + 6
MAX_EXPIRY_DAYS = 3650


class ApiKeyError(ConsoleError):
    """A key could not be created or revoked; the message says why."""


class InvalidApiKey(ConsoleError):
    """The request's key is missing, unknown, revoked or expired (HTTP 401)."""


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    user: str
    prefix: str
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.expired

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and parse_iso(self.expires_at) <= _now()

    @property
    def state(self) -> str:
        return "revoked" if self.revoked_at else "expired" if self.expired else "active"

    def principal(self) -> Principal:
        """The caller a request with this key acts as: the key's user, on the API channel."""
        return Principal(self.user, role="", channel="api", api_key_id=str(self.id))


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str  # shown once; only its SHA-256 is stored


def secret_digest(secret: str) -> str:
    # A 256-bit random secret needs no slow hash: nobody can guess it, so a fast digest is enough to keep the
    # database from holding anything a reader could replay.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _record(row: dict) -> ApiKey:
    return ApiKey(row["id"], row["name"], row["user"], row["prefix"], row["created_at"], row["created_by"],
                  row["expires_at"], row["revoked_at"], row["last_used_at"])


class ApiKeyStore:
    def __init__(self, database: AppDatabase, guard: Guard):
        self.database = database
        self.guard = guard

    def create(self, principal: Principal | None, user: str, name: str, expires_days: float | None = None) -> CreatedKey:
        """A new key for `user`; the secret is in the result and nowhere else."""
        self.guard.require(principal, Permission.USERS_MANAGE, f"create an API key for {user}")
        name = (name or "").strip()
        if not name or len(name) > 64:
            raise ApiKeyError("Give the key a label of 1 to 64 characters, so you can tell it apart later.")
        if expires_days is not None and not 0 < expires_days <= MAX_EXPIRY_DAYS:
            raise ApiKeyError(f"A key expires after 1 to {MAX_EXPIRY_DAYS} days (got {expires_days:g}).")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        expires_at = ((_now() + datetime.timedelta(days=expires_days)).isoformat(timespec="seconds")
                      if expires_days is not None else None)
        with self.database.write() as db:
            if not db.execute("select 1 from users where name = ?", [user]).fetchone():
                raise ApiKeyError(f"No user named '{user}'. A key acts as a user: create the user first.")
            row = {"name": name, "user": user, "prefix": secret[:SHOWN_PREFIX_LENGTH],
                   "secret_sha256": secret_digest(secret), "created_at": now_iso(), "created_by": principal.user,
                   "expires_at": expires_at, "revoked_at": None, "revoked_by": None, "last_used_at": None}
            key_id = db["api_keys"].insert(row).last_pk
            self.guard.record(principal, "api_key.create", f"{name} ({user})", db=db, key_id=key_id, user=user,
                              expires_at=expires_at)
        return CreatedKey(_record({**row, "id": key_id}), secret)

    def keys(self, principal: Principal | None) -> list[ApiKey]:
        self.guard.require(principal, Permission.USERS_MANAGE, "list API keys")
        with self.database.read() as db:
            return [_record(row) for row in db.query("select * from api_keys order by id")]

    def revoke(self, principal: Principal | None, key_id: int) -> ApiKey:
        """Revoke at once: the next request with the key is refused (401)."""
        self.guard.require(principal, Permission.USERS_MANAGE, f"revoke API key {key_id}")
        with self.database.write() as db:
            rows = list(db.query("select * from api_keys where id = ?", [key_id]))
            if not rows:
                raise ApiKeyError(f"No API key with id {key_id}; `llm-console api-keys list` shows them.")
            if rows[0]["revoked_at"]:
                raise ApiKeyError(f"The API key {key_id} ({rows[0]['name']}) is already revoked.")
            at = now_iso()
            db.execute("update api_keys set revoked_at = ?, revoked_by = ? where id = ?", [at, principal.user, key_id])
            self.guard.record(principal, "api_key.revoke", f"{rows[0]['name']} ({rows[0]['user']})", db=db,
                              key_id=key_id)
        return _record({**rows[0], "revoked_at": at})

    def resolve(self, secret: str | None) -> ApiKey:
        """The active key for a presented secret, or InvalidApiKey saying what is wrong."""
        if not secret:
            raise InvalidApiKey("This API needs a key: send the header 'Authorization: Bearer <key>'. "
                                "An administrator creates keys with `llm-console api-keys create USER --name LABEL`.")
        digest = secret_digest(secret)
        with self.database.read() as db:
            rows = list(db.query("select * from api_keys where secret_sha256 = ?", [digest]))
        if not rows or not hmac.compare_digest(rows[0]["secret_sha256"], digest):
            raise InvalidApiKey("The API key is not valid. Check it, or ask an administrator for a new one.")
        key = _record(rows[0])
        if key.revoked_at:
            raise InvalidApiKey(f"The API key '{key.name}' was revoked on {key.revoked_at[:10]}. Ask an administrator "
                                "for a new one.")
        if key.expired:
            raise InvalidApiKey(f"The API key '{key.name}' expired on {key.expires_at[:10]}. Ask an administrator "
                                "for a new one.")
        return key
