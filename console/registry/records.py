"""What the model registry hands out: plain, frozen records read from the database (no live rows)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from console.errors import FileProblem


@dataclass(frozen=True)
class VersionRecord:
    id: int
    model_id: int
    model_name: str
    label: str
    format: str  # "hf" or "gguf"
    architecture: str | None
    parameters: int | None
    precision: str | None
    source_path: str  # the folder (hf) or the file (gguf)
    checksum: str  # SHA-256 over the version's sorted (SHA-256, size, path) lines
    file_count: int
    total_bytes: int
    registered_by: str
    registered_at: str
    notes: str
    retired_at: str | None
    verify_state: str  # "verified" or "tampered"
    last_checked_at: str | None
    last_check_kind: str | None  # "quick" (sizes and times) or "full" (SHA-256)
    last_full_check_at: str | None
    check_detail: str | None
    is_default: bool = False

    @property
    def ref(self) -> str:
        return f"{self.model_name}:{self.label}"

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    @property
    def root(self) -> Path:
        """The folder the version's file paths are relative to."""
        source = Path(self.source_path)
        return source.parent if self.format == "gguf" else source


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    sha256: str
    mtime_ns: int


@dataclass(frozen=True)
class LoadEvent:
    id: int
    version_id: int
    version_ref: str
    loaded_at: str
    loaded_by: str | None
    precision: str | None
    device: str | None
    outcome: str  # "loaded", "refused" (verification failed or retired), "failed" (the engine refused)
    detail: str | None
    load_seconds: float | None


@dataclass(frozen=True)
class VerificationReport:
    version: VersionRecord  # as it stands after the check
    kind: str  # "quick" or "full"
    problems: tuple[FileProblem, ...]
    checked_at: str
    rehashed_because: str | None = None  # why a full check ran when it was not asked for

    @property
    def ok(self) -> bool:
        return not self.problems
