"""Per-key usage of the API: requests, prompt and completion tokens and errors per UTC day, kept in the
database, plus the requests in flight now. Counts gather in memory and are written in one transaction every
few seconds (and at shutdown), so 200 concurrent streams cost no write each.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass

from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso

log = logging.getLogger(__name__)
FLUSH_EVERY_S = 2.0
FIELDS = ("requests", "prompt_tokens", "completion_tokens", "errors")


@dataclass(frozen=True)
class KeyUsage:
    key_id: int
    day: str  # YYYY-MM-DD, UTC
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


class UsageMeter:
    def __init__(self, database: AppDatabase):
        self.database = database
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # a reader never sees counts that left memory but are not written yet
        self._pending: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._last_used: dict[int, str] = {}
        self._in_flight: dict[int | None, int] = defaultdict(int)  # key id (None: keys off) -> requests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the request path ----------------------------------------------------------------------------------
    def started(self, key_id: int | None) -> None:
        """A request reached the engine (`ended` when it leaves)."""
        with self._lock:
            self._in_flight[key_id] += 1

    def ended(self, key_id: int | None) -> None:
        with self._lock:
            self._in_flight[key_id] = max(0, self._in_flight[key_id] - 1)

    def record(self, key_id: int, prompt_tokens: int = 0, completion_tokens: int = 0, error: bool = False) -> None:
        """One answered request of a key, refused or not."""
        with self._lock:
            counts = self._pending[(key_id, today())]
            counts[0] += 1
            counts[1] += prompt_tokens
            counts[2] += completion_tokens
            counts[3] += int(error)
            self._last_used[key_id] = now_iso()

    def in_flight(self) -> dict[int | None, int]:
        with self._lock:
            return {key: count for key, count in self._in_flight.items() if count}

    # --- reading and writing -------------------------------------------------------------------------------
    def usage(self, day: str | None = None) -> dict[int, KeyUsage]:
        """Every key's usage on `day` (default today), stored and not yet written."""
        day = day or today()
        with self._flush_lock:
            with self.database.read() as db:
                stored = {row["key_id"]: [row[field] for field in FIELDS]
                          for row in db.query("select * from api_key_usage where day = ?", [day])}
            with self._lock:
                for (key_id, pending_day), counts in self._pending.items():
                    if pending_day == day:
                        stored[key_id] = [a + b for a, b in zip(stored.get(key_id, [0, 0, 0, 0]), counts)]
        return {key_id: KeyUsage(key_id, day, *counts) for key_id, counts in stored.items()}

    def history(self, key_id: int) -> list[KeyUsage]:
        """One key's usage per day, newest first."""
        self.flush()
        with self.database.read() as db:
            return [KeyUsage(row["key_id"], row["day"], *(row[field] for field in FIELDS))
                    for row in db.query("select * from api_key_usage where key_id = ? order by day desc", [key_id])]

    def flush(self) -> None:
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: [0, 0, 0, 0])
            last_used, self._last_used = self._last_used, {}
        if not pending and not last_used:
            return
        try:
            self._write(pending, last_used)
        except BaseException:
            with self._lock:  # kept for the next flush
                for slot, counts in pending.items():
                    self._pending[slot] = [a + b for a, b in zip(self._pending[slot], counts)]
                self._last_used = {**last_used, **self._last_used}
            raise

    def _write(self, pending: dict, last_used: dict) -> None:
        with self.database.write() as db:
            for (key_id, day), counts in pending.items():
                db.execute(
                    "insert into api_key_usage (key_id, day, requests, prompt_tokens, completion_tokens, errors) "
                    "values (?, ?, ?, ?, ?, ?) on conflict (key_id, day) do update set "
                    "requests = requests + excluded.requests, prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                    "completion_tokens = completion_tokens + excluded.completion_tokens, "
                    "errors = errors + excluded.errors",
                    [key_id, day, *counts])
            for key_id, at in last_used.items():
                db.execute("update api_keys set last_used_at = ? where id = ?", [at, key_id])

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="llm-console-api-usage", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY_S):
            try:
                self.flush()
            except Exception:  # a locked database: the counts stay pending and go with the next flush
                log.exception("writing API usage failed")
