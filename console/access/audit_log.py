"""The audit log: append-only, each entry chained to the one before by a SHA-256 over its content.

Editing a row breaks its own hash; deleting one breaks the next row's link; deleting the newest rows is
caught by the head record (count and last hash) kept beside the log. `verify()` names the first bad entry.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass

from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso

GENESIS = "0" * 64
HEAD_KEY = "audit_head"
_CONTENT_FIELDS = ("seq", "at", "actor", "action", "target", "outcome", "details")


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


def entry_hash(prev_hash: str, content: dict) -> str:
    canonical = json.dumps({k: content[k] for k in _CONTENT_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


class AuditLog:
    def __init__(self, database: AppDatabase):
        self.database = database

    def append(self, actor: str, action: str, target: str = "", outcome: str = "ok", db=None, **details) -> AuditEntry:
        """Append one entry; with `db` (an open `database.write()` transaction) it commits with the action."""
        if db is not None:
            return self._append(db, actor, action, target, outcome, details)
        with self.database.write() as db:
            return self._append(db, actor, action, target, outcome, details)

    def _append(self, db, actor: str, action: str, target: str, outcome: str, details: dict) -> AuditEntry:
        last = list(db.query("select seq, hash from audit_log order by seq desc limit 1"))
        seq, prev_hash = (last[0]["seq"] + 1, last[0]["hash"]) if last else (1, GENESIS)
        content = {"seq": seq, "at": now_iso(), "actor": actor, "action": action, "target": target,
                   "outcome": outcome, "details": json.dumps(details, sort_keys=True, default=str)}
        digest = entry_hash(prev_hash, content)
        row_id = db["audit_log"].insert({**content, "prev_hash": prev_hash, "hash": digest}).last_pk
        db["settings"].upsert({"key": HEAD_KEY, "value": json.dumps({"seq": seq, "hash": digest})}, pk="key")
        return AuditEntry(id=row_id, prev_hash=prev_hash, hash=digest, **content)

    def entries(self, actor: str | None = None, action: str | None = None, outcome: str | None = None,
                since: str | None = None, limit: int = 10_000) -> list[AuditEntry]:
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
        where = f"where {' and '.join(clauses)}" if clauses else ""
        with self.database.read() as db:
            rows = db.query(f"select * from audit_log {where} order by seq desc limit ?", values + [limit])
            return [AuditEntry(**row) for row in rows]

    def verify(self) -> AuditVerification:
        with self.database.read() as db:
            rows = list(db.query("select * from audit_log order by seq"))
            head_rows = list(db.query("select value from settings where key = ?", [HEAD_KEY]))
        prev_hash, expected_seq = GENESIS, 1
        for row in rows:
            if row["seq"] != expected_seq:
                return AuditVerification(False, len(rows), expected_seq, f"entry {expected_seq} is missing (deleted)")
            if row["prev_hash"] != prev_hash:
                return AuditVerification(False, len(rows), row["seq"], f"entry {row['seq']} does not follow entry {row['seq'] - 1} (an entry before it was changed or deleted)")
            if entry_hash(prev_hash, row) != row["hash"]:
                return AuditVerification(False, len(rows), row["seq"], f"entry {row['seq']} ({row['action']} by {row['actor']}) was edited after it was written")
            prev_hash, expected_seq = row["hash"], expected_seq + 1
        if head_rows:
            head = json.loads(head_rows[0]["value"])
            if head["seq"] != len(rows) or head["hash"] != prev_hash:
                return AuditVerification(False, len(rows), len(rows) + 1, f"the newest entries after entry {len(rows)} were deleted (the log recorded {head['seq']})")
        elif rows:
            return AuditVerification(False, len(rows), 1, "the log's head record is missing")
        return AuditVerification(True, len(rows))

    @staticmethod
    def to_csv(entries: list[AuditEntry]) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["seq", "time", "actor", "action", "target", "outcome", "details", "hash"])
        for entry in sorted(entries, key=lambda e: e.seq):
            writer.writerow([entry.seq, entry.at, entry.actor, entry.action, entry.target, entry.outcome, entry.details, entry.hash])
        return out.getvalue()
