"""Streaming SHA-256 of model files, with progress (bytes done, total, bytes/s) and cancellation.

Files are read into one reused buffer, so a multi-GB file never sits in memory. hashlib releases the GIL
while it hashes a large buffer, so a worker thread hashing does not stall the UI thread. Cancellation is
checked between buffers. The registry (`registry.py`) calls this; so does the hashing benchmark.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from console.errors import HashingCancelled

BUFFER_SIZE = 4 * 1024 * 1024
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class HashProgress:
    done_bytes: int
    total_bytes: int
    bytes_per_second: float
    current_file: str

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 1.0


ProgressCallback = Callable[[HashProgress], None]


@dataclass(frozen=True)
class FileDigest:
    path: str  # relative to the version's root, "/"-separated
    size: int
    sha256: str
    mtime_ns: int


class FileChangedWhileHashing(Exception):
    def __init__(self, path: str):
        super().__init__(f"{path} changed while it was being hashed")
        self.path = path


class _Meter:
    """Counts bytes and reports at most every PROGRESS_INTERVAL_S, plus at the start and the end."""

    def __init__(self, total: int, progress: ProgressCallback | None):
        self.total, self.done, self.progress = total, 0, progress
        self.started = time.perf_counter()
        self.last_report = 0.0
        self.current = ""

    def add(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.progress is not None and now - self.last_report >= PROGRESS_INTERVAL_S:
            self.report(now)

    def report(self, now: float | None = None) -> None:
        if self.progress is None:
            return
        now = time.perf_counter() if now is None else now
        self.last_report = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.progress(HashProgress(self.done, self.total, rate, self.current))


def sha256_file(
    path: Path,
    cancel: threading.Event | None = None,
    on_bytes: Callable[[int], None] | None = None,
    buffer_size: int = BUFFER_SIZE,
) -> str:
    """The file's SHA-256 as hex; raises HashingCancelled between buffers once `cancel` is set."""
    digest = hashlib.sha256()
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            if cancel is not None and cancel.is_set():
                raise HashingCancelled("Hashing was cancelled; nothing was changed.")
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            if on_bytes is not None:
                on_bytes(count)
    return digest.hexdigest()


def hash_each(
    root: Path,
    relative_paths: Iterable[str],
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[str, FileDigest | OSError | FileChangedWhileHashing]]:
    """Hash each file under `root`, yielding its digest or what went wrong with it (an unreadable file,
    or one whose size or modification time moved while it was read). Raises HashingCancelled."""
    paths = list(relative_paths)
    stats: dict[str, os.stat_result | OSError] = {}
    for name in paths:
        try:
            stats[name] = (root / name).stat()
        except OSError as error:
            stats[name] = error
    meter = _Meter(sum(s.st_size for s in stats.values() if not isinstance(s, OSError)), progress)
    meter.report()
    for name in paths:
        before = stats[name]
        if isinstance(before, OSError):
            yield name, before
            continue
        meter.current = name
        try:
            sha256 = sha256_file(root / name, cancel, meter.add)
            after = (root / name).stat()
        except OSError as error:
            yield name, error
            continue
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            yield name, FileChangedWhileHashing(name)
            continue
        yield name, FileDigest(name, before.st_size, sha256, before.st_mtime_ns)
    meter.report()


def hash_files(
    root: Path,
    relative_paths: Iterable[str],
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[FileDigest]:
    """Hash every file or raise: OSError, FileChangedWhileHashing, HashingCancelled."""
    digests: list[FileDigest] = []
    for _name, outcome in hash_each(root, relative_paths, progress, cancel):
        if not isinstance(outcome, FileDigest):
            raise outcome
        digests.append(outcome)
    return digests


def version_checksum(files: Iterable[tuple[str, int, str]]) -> str:
    """One SHA-256 for a whole version: over its sorted `sha256  size  path` lines, as in a manifest."""
    lines = "".join(f"{sha256}  {size}  {path}\n" for path, size, sha256 in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()
