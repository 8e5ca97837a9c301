"""The audit log: append-only, each entry chained to the one before by a SHA-256 over its content.

Editing a row breaks its own hash; deleting one breaks the next row's link. Deleting the newest rows (or all of
them) is caught by the head — the newest entry's number and hash — kept twice: in the database's `settings`
table and in a small file beside the database (`audit-head.json`, 0600, replaced atomically), so one edit of
the database cannot rewrite both. The head only moves forward from the head last recorded: an append that
finds the table's last row disagreeing with a recorded head writes its entry flagged and leaves the head where
it was, so the damage stays visible. `export_head()` gives the head for keeping off this machine, and
`verify(exported_head=…)` checks the log still contains it. Fields a caller typed (an unknown user name) are
stored length-limited with control characters escaped (`printable`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from console.errors import ConsoleError
from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso

GENESIS = "0" * 64
HEAD_KEY = "audit_head"
HEAD_FILE_KEY = "audit_head_file"  # set once the head file exists: from then on its absence is a finding
HEAD_FILE = "audit-head.json"
FIELD_LIMIT = 200
_CONTENT_FIELDS = ("seq", "at", "actor", "action", "target", "outcome", "details")


class AuditHeadError(ConsoleError):
    """An exported head file cannot be read or is not an audit head."""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    seq: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str  # ok | denied | failed
    details: str  # JSON
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""


@dataclass(frozen=True)
class AuditHead:
    """The newest entry's number and hash: what an exported head anchors."""

    seq: int
    hash: str
    at: str = ""

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "hash": self.hash, "time": self.at}, indent=2) + "\n"

    @staticmethod
    def parse(text: str, name: str = "the head") -> "AuditHead":
        try:
            data = json.loads(text)
            seq, digest = data["seq"], data["hash"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(digest, str) \
                    or len(digest) != 64:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            raise AuditHeadError(f"{name} is not an audit head (JSON with seq, hash and time, from "
                                 "`llm-console audit export-head`).") from None
        return AuditHead(seq, digest, str(data.get("time", "")))


def printable(text: object, limit: int = FIELD_LIMIT) -> str:
    """`text` with control and format characters escaped (\\n, \\x1b, …) and cut to `limit` characters: safe to
    store, print on a terminal or show in a table."""
    out = []
    for character in str(text):
        if unicodedata.category(character)[0] == "C":
            code = ord(character)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(character)
    cleaned = "".join(out)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def entry_hash(prev_hash: str, content: dict) -> str:
    canonical = json.dumps({k: content[k] for k in _CONTENT_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


class AuditLog:
    def __init__(self, database: AppDatabase, head_path: Path | None = None):
        self.database = database
        self.head_path = Path(head_path) if head_path else Path(database.path).parent / HEAD_FILE

    # --- writing -----------------------------------------------------------------------------------------
    def append(self, actor: str, action: str, target: str = "", outcome: str = "ok", db=None, **details) -> AuditEntry:
        """Append one entry; with `db` (an open `database.write()` transaction) it commits with the action."""
        if db is not None:
            return self._append(db, actor, action, target, outcome, details)
        with self.database.write() as db:
            return self._append(db, actor, action, target, outcome, details)

    def _append(self, db, actor: str, action: str, target: str, outcome: str, details: dict) -> AuditEntry:
        last = db.execute("select seq, hash from audit_log order by seq desc limit 1").fetchone()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        problem = self._head_problem(db, last)
        if problem:
            details = {**details, "log_tampered": problem}  # the entry says so, and the head stays put
        content = {"seq": seq, "at": now_iso(), "actor": printable(actor), "action": printable(action),
                   "target": printable(target), "outcome": outcome,
                   "details": json.dumps(details, sort_keys=True, default=str)}
        digest = entry_hash(prev_hash, content)
        row_id = db["audit_log"].insert({**content, "prev_hash": prev_hash, "hash": digest}).last_pk
        if not problem:
            db["settings"].upsert({"key": HEAD_KEY, "value": json.dumps({"seq": seq, "hash": digest})}, pk="key")
            db["settings"].upsert({"key": HEAD_FILE_KEY, "value": "1"}, pk="key")
            head = AuditHead(seq, digest, content["at"])
            self.database.after_commit(lambda: self._write_head_file(head))
        return AuditEntry(id=row_id, prev_hash=prev_hash, hash=digest, **content)

    def _head_problem(self, db, last) -> str:
        """Why the table's last row disagrees with a recorded head ("" when it agrees)."""
        recorded = self._database_head(db)
        table = (last[0], last[1]) if last else None
        if recorded is None and table is not None:
            return "the head record in the database is missing"
        if recorded is not None and (recorded.seq, recorded.hash) != table:
            return f"the newest entry is not entry {recorded.seq} recorded as the head"
        file_head, file_expected = self.read_head_file(), self._file_expected(db)
        if file_head is None:
            return "the head file beside the database is missing" if file_expected else ""
        if table is None or file_head.seq > table[0]:
            return f"the head file records entry {file_head.seq}, which the table no longer has"
        row = db.execute("select hash from audit_log where seq = ?", [file_head.seq]).fetchone()
        return "" if row and row[0] == file_head.hash else f"entry {file_head.seq} differs from the head file"

    def _write_head_file(self, head: AuditHead) -> None:
        """Forward only (another process may have written a newer head), atomically, readable by this user only."""
        current = self.read_head_file()
        if current is not None and current.seq >= head.seq:
            return
        temporary = self.head_path.with_name(f".{self.head_path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(head.to_json())
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.head_path)

    # --- reading -----------------------------------------------------------------------------------------
    def read_head_file(self) -> AuditHead | None:
        try:
            return AuditHead.parse(self.head_path.read_text(encoding="utf-8"), str(self.head_path))
        except FileNotFoundError:
            return None
        except (OSError, AuditHeadError):
            return AuditHead(-1, "")  # unreadable or garbled: never matches

    @staticmethod
    def _database_head(db) -> AuditHead | None:
        row = db.execute("select value from settings where key = ?", [HEAD_KEY]).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return AuditHead(value["seq"], value["hash"])

    @staticmethod
    def _file_expected(db) -> bool:
        return db.execute("select 1 from settings where key = ?", [HEAD_FILE_KEY]).fetchone() is not None

    def entries(self, actor: str | None = None, action: str | None = None, outcome: str | None = None,
                since: str | None = None, after_seq: int | None = None, limit: int = 10_000) -> list[AuditEntry]:
        """Newest first. `after_seq` gives only the entries written after that one (cheap: the seq index)."""
        clauses, values = [], []
        for column, value in (("actor", actor), ("outcome", outcome)):
            if value:
                clauses.append(f"{column} = ?")
                values.append(value)
        if action:
            clauses.append("action like ?")
            values.append(f"{action}%")
        if since:
            clauses.append("at >= ?")
            values.append(since)
        if after_seq is not None:
            clauses.append("seq > ?")
            values.append(after_seq)
        where = f"where {' and '.join(clauses)}" if clauses else ""
        with self.database.read() as db:
            rows = db.query(f"select * from audit_log {where} order by seq desc limit ?", values + [limit])
            return [AuditEntry(**row) for row in rows]

    def export_head(self) -> AuditHead:
        """The newest entry's number and hash, once the whole log verifies (an anchor for off this machine)."""
        result = self.verify()
        if not result.ok:
            raise AuditHeadError(f"The audit log does not verify ({result.problem}); its head is not worth keeping.")
        with self.database.read() as db:
            row = db.execute("select seq, hash, at from audit_log order by seq desc limit 1").fetchone()
        return AuditHead(*row) if row else AuditHead(0, GENESIS, now_iso())

    def verify(self, exported_head: AuditHead | None = None) -> AuditVerification:
        with self.database.read() as db:
            rows = list(db.query("select * from audit_log order by seq"))
            database_head = self._database_head(db)
            file_expected = self._file_expected(db)
        count = len(rows)
        prev_hash, expected_seq = GENESIS, 1
        for row in rows:
            if row["seq"] != expected_seq:
                return AuditVerification(False, count, expected_seq, f"entry {expected_seq} is missing (deleted)")
            if row["prev_hash"] != prev_hash:
                return AuditVerification(False, count, row["seq"], f"entry {row['seq']} does not follow entry {row['seq'] - 1} (an entry before it was changed or deleted)")
            if entry_hash(prev_hash, row) != row["hash"]:
                return AuditVerification(False, count, row["seq"], f"entry {row['seq']} ({printable(row['action'])} by {printable(row['actor'])}) was edited after it was written")
            prev_hash, expected_seq = row["hash"], expected_seq + 1
        hashes = {row["seq"]: row["hash"] for row in rows}
        if database_head is not None:
            if database_head.seq > count:
                return AuditVerification(False, count, count + 1, f"the newest entries after entry {count} were deleted (the log recorded {database_head.seq})")
            if (database_head.seq, database_head.hash) != (count, prev_hash):
                return AuditVerification(False, count, database_head.seq, f"entry {database_head.seq} is not the head the log recorded: entries were deleted and others written in their place")
        elif rows:
            return AuditVerification(False, count, 1, "the log's head record is missing")
        file_head = self.read_head_file()
        if file_head is None and file_expected:
            return AuditVerification(False, count, None, f"the head file {self.head_path} is missing")
        for head, where in ((file_head, f"the head file {self.head_path.name}"), (exported_head, "the exported head")):
            if head is None:
                continue
            if head.seq > count:
                return AuditVerification(False, count, count + 1, f"the newest entries after entry {count} were deleted ({where} records entry {head.seq})")
            if head.seq and hashes.get(head.seq) != head.hash:
                return AuditVerification(False, count, head.seq, f"entry {head.seq} differs from {where}: the log was rewritten")
        return AuditVerification(True, count)

    @staticmethod
    def to_csv(entries: list[AuditEntry]) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["seq", "time", "actor", "action", "target", "outcome", "details", "hash"])
        for entry in sorted(entries, key=lambda e: e.seq):
            writer.writerow([entry.seq, entry.at, entry.actor, entry.action, entry.target, entry.outcome, entry.details, entry.hash])
        return out.getvalue()
