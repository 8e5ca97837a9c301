"""The app's SQLite database: one file in the data directory, in WAL mode with a busy timeout, migrated at open.

Every access goes through `read()` or `write()`. They hold one lock (the GUI uses the database from the UI
thread and from worker threads) and turn SQLite's failures into typed errors with a message a person can act
on. `write()` is one transaction: it commits entirely or not at all. Schema changes live in `migrations.py`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Iterator

import sqlite_utils

from console.storage import migrations
from console.errors import DatabaseCorrupt, DatabaseError, DatabaseLocked, DiskFull

BUSY_TIMEOUT_S = 5.0


def translate_sqlite_error(error: sqlite3.Error, path: Path) -> Exception:
    """The typed error for an SQLite failure, or the error itself when it is a programming mistake."""
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return DatabaseLocked(
            f"The database {path} is locked by another program (another LLM Console window or an "
            "`llm-console models` command is writing to it). Nothing was changed; try again when it has finished."
        )
    if name == "SQLITE_FULL" or "database or disk is full" in text:
        return DiskFull(
            f"The disk holding {path} is full. Nothing was changed and everything registered before is intact; "
            "free some space and try again."
        )
    if name in ("SQLITE_NOTADB",) or name.startswith("SQLITE_CORRUPT") or "file is not a database" in text:
        return DatabaseCorrupt(
            f"{path} is not an LLM Console database or is damaged ({text}). Move it aside to start a new one, "
            "or restore it from a backup."
        )
    if name.startswith("SQLITE_READONLY"):
        return DatabaseError(f"{path} is read-only for this user. Nothing was changed; check the file's permissions.")
    if name.startswith("SQLITE_CANTOPEN"):
        return DatabaseError(f"Cannot open the database {path}: check that its folder exists and is writable.")
    if name.startswith("SQLITE_IOERR"):
        return DatabaseError(f"Writing {path} failed ({text}): the disk may be full or failing. Nothing was changed.")
    return error


@contextlib.contextmanager
def storage_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.DatabaseError) as error:
        if isinstance(error, sqlite3.IntegrityError):
            raise
        translated = translate_sqlite_error(error, path)
        if translated is error:
            raise
        raise translated from error


class AppDatabase:
    """The open database, shared by the registry and the conversation store."""

    def __init__(self, db: sqlite_utils.Database, path: Path):
        self.db = db
        self.path = path
        self._lock = threading.RLock()
        self.closed = False
        self._after_commit: list = []  # actions queued by the transaction under way
        self._in_transaction = False

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite_utils.Database]:
        with self._lock, storage_errors(self.path):
            self._refuse_if_closed()
            yield self.db

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """One transaction, taken with BEGIN IMMEDIATE so a waiting writer honours the busy timeout."""
        with self._lock, storage_errors(self.path):
            self._refuse_if_closed()
            connection = self.db.conn
            connection.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield self.db
                connection.execute("COMMIT")
            except BaseException:
                self._after_commit.clear()
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False
            actions, self._after_commit = self._after_commit, []
            for action in actions:
                action()

    def after_commit(self, action) -> None:
        """Run `action` once the transaction under way has committed (never if it rolls back); at once outside one."""
        with self._lock:
            if self._in_transaction:
                self._after_commit.append(action)
                return
        action()

    def integrity_check(self) -> str:
        with self.read() as db:
            return "; ".join(row[0] for row in db.execute("PRAGMA integrity_check").fetchall())

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self.db.close()

    def _refuse_if_closed(self) -> None:
        if self.closed:  # a late event after shutdown: say so instead of failing inside sqlite3
            raise DatabaseError(f"The database {self.path} is closed: LLM Console is shutting down.")


def make_private(path: Path, mode: int) -> None:
    """Readable by this OS user only (the database holds password hashes and conversations); best effort on
    files this user does not own, which it could not change anyway."""
    try:
        if path.exists() and stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
    except PermissionError:
        pass


def open_database(path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S, migrate: bool = True) -> AppDatabase:
    """Open (creating if needed) the database at `path` and bring its schema up to date. Its folder becomes
    0700 and its files (the database, -wal, -shm) 0600, also when an older version left them readable."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        make_private(path.parent, 0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite gives -wal and -shm this mode too
        for suffix in ("", "-wal", "-shm"):
            make_private(Path(f"{path}{suffix}"), 0o600)
    except OSError as error:
        raise DatabaseError(f"Cannot create the folder {path.parent}: {error.strerror}.") from error
    connection = None
    try:
        with storage_errors(path):
            connection = sqlite3.connect(str(path), timeout=busy_timeout_s, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")  # a committed version survives power loss too
            connection.execute("PRAGMA foreign_keys = ON")
            database = AppDatabase(sqlite_utils.Database(connection, execute_plugins=False), path)
            if migrate:
                with database._lock:
                    migrations.migrate(database.db)
    except BaseException:
        if connection is not None:
            connection.close()
        raise
    return database
