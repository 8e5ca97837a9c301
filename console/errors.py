"""Errors a user can cause in the console's services and storage, each with a message a person can act on.

The GUI shows the message as it is; the CLI prints `error: <message>` and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConsoleError(Exception):
    """Base class: the message is shown to the user as it is."""


# --- storage ------------------------------------------------------------------------------------------------
class DatabaseError(ConsoleError):
    """The app's SQLite database cannot be used."""


class DatabaseLocked(DatabaseError):
    """Another process holds the write lock for longer than the busy timeout."""


class DatabaseTooNew(DatabaseError):
    """The database records migrations this version of the app does not know."""


class DatabaseCorrupt(DatabaseError):
    """The file is not an SQLite database, or SQLite reports it damaged."""


class DiskFull(DatabaseError):
    """The disk (or the database's size limit) is full; the write was rolled back."""


# --- registry -----------------------------------------------------------------------------------------------
class RegistryError(ConsoleError):
    """A registry operation was refused."""


class InvalidModel(RegistryError):
    """The path is not an importable model: unreadable, no weights, truncated, unknown architecture."""


class DuplicateImport(RegistryError):
    """The same files (by SHA-256) are already registered as another version."""

    def __init__(self, message: str, existing_ref: str):
        super().__init__(message)
        self.existing_ref = existing_ref


class VersionExists(RegistryError):
    """The model already has a version with that label."""


class UnknownModel(RegistryError):
    """No registered model or version matches the reference."""


class VersionRetired(RegistryError):
    """A retired version cannot be loaded or made the default."""


class ManifestError(RegistryError):
    """A manifest file is unreadable, malformed, or names unsafe paths."""


class HashingCancelled(ConsoleError):
    """The user cancelled hashing; nothing was written."""


class ImportCancelled(HashingCancelled):
    """The user cancelled an import; nothing was registered."""


@dataclass(frozen=True)
class FileProblem:
    """One file that does not match what was registered."""

    path: str
    expected_sha256: str
    found_sha256: str | None  # None: not hashed (missing, or changed size)
    reason: str  # "changed", "missing", "unreadable", "unstable", "extra", "added", "unsafe"
    detail: str = ""  # for "unsafe": why the entry must not be read (a link out of the folder, a loop)

    def describe(self) -> str:
        if self.reason == "added":
            return f"{self.path} was added after the import: it is not in the version's file list, yet a load would read it"
        if self.reason == "unsafe":
            return self.detail.rstrip(".")
        if self.reason == "missing":
            return f"{self.path} is missing (expected SHA-256 {self.expected_sha256})"
        if self.reason == "unreadable":
            return f"{self.path} cannot be read (expected SHA-256 {self.expected_sha256})"
        if self.reason == "extra":
            return f"{self.path} is not in the manifest"
        if self.reason == "unstable":
            return f"{self.path} changed while it was being checked"
        return f"{self.path} changed: expected SHA-256 {self.expected_sha256}, found {self.found_sha256}"


def describe_problems(problems: list[FileProblem]) -> str:
    """The first problem in full, and how many more there are."""
    first = problems[0].describe()
    others = len(problems) - 1
    return first + (f" (and {others} other file{'s' if others > 1 else ''})" if others else "")


class ChecksumMismatch(RegistryError):
    """Files no longer match their recorded SHA-256 (a load is refused), or do not match a manifest."""

    def __init__(self, message: str, problems: list[FileProblem]):
        super().__init__(message)
        self.problems = list(problems)
        first = self.problems[0]
        self.file, self.expected, self.found = first.path, first.expected_sha256, first.found_sha256


# --- memory and the tuning lab ------------------------------------------------------------------------------
class MemoryWontFit(ConsoleError):
    """A load's memory estimate exceeds what the device has free; the load was not started."""

    def __init__(self, message: str, estimate):
        super().__init__(message)
        self.estimate = estimate  # engine.weights.memory_estimate.MemoryEstimate


class LabError(ConsoleError):
    """A sweep cannot be planned, run, resumed or applied as asked; the message says why."""
