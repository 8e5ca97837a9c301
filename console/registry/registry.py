"""The model registry: every model version, its files and their SHA-256, re-checked before every load.

The GUI (`ui/models_panel.py`) and the CLI (`llm-console models …`) call these same functions, so the checks
are written once. A version is written in one transaction only after all its files are hashed: a cancel, a
crash or a kill never leaves a half-registered version. Manifests (export, check on another workstation)
are in `manifests.py`; storage and its errors in `database.py`.
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

from console.registry.checksums import (
    FileChangedWhileHashing,
    FileDigest,
    ProgressCallback,
    hash_each,
    hash_files,
    version_checksum,
)
from console.storage.database import AppDatabase
from console.errors import (
    ChecksumMismatch,
    DuplicateImport,
    FileProblem,
    HashingCancelled,
    ImportCancelled,
    InvalidModel,
    RegistryError,
    UnknownModel,
    VersionExists,
    VersionRetired,
    describe_problems,
)
from console.registry.records import FileRecord, LoadEvent, VerificationReport, VersionRecord
from console.storage.timestamps import local_time, now_iso, parse_iso

DEFAULT_VERIFY_INTERVAL_HOURS = 24.0
VERIFY_INTERVAL_KEY = "verify_interval_hours"
DEFAULT_VERSION_KEY = "default_version_id"
_VERSION_FIELDS = [f.name for f in dataclasses.fields(VersionRecord) if f.name != "is_default"]
_SELECT_VERSIONS = "select v.*, m.name as model_name from versions v join models m on m.id = v.model_id"


def current_user() -> str:
    """The OS user, who is recorded as having registered, verified or loaded a version."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_name(kind: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise RegistryError(f"The {kind} is empty. Give the model a {kind}.")
    if ":" in value:
        raise RegistryError(f"The {kind} '{value}' contains ':', which separates NAME:VERSION. Choose another.")
    if len(value) > 200:
        raise RegistryError(f"The {kind} is longer than 200 characters. Choose a shorter one.")
    return value


class Registry:
    def __init__(self, database: AppDatabase):
        self.database = database

    # --- settings ----------------------------------------------------------------------------------------
    def setting(self, key: str, default: str | None = None) -> str | None:
        with self.database.read() as db:
            row = db.execute("select value from settings where key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str | None) -> None:
        with self.database.write() as db:
            if value is None:
                db.execute("delete from settings where key = ?", [key])
            else:
                db.execute("insert or replace into settings (key, value) values (?, ?)", [key, value])

    @property
    def verify_interval_hours(self) -> float:
        """How old a version's last full re-hash may get before the next load (or the schedule) re-hashes it."""
        return float(self.setting(VERIFY_INTERVAL_KEY, str(DEFAULT_VERIFY_INTERVAL_HOURS)))

    def set_verify_interval(self, hours: float) -> None:
        if not 0 <= hours <= 24 * 365:
            raise RegistryError("The re-hash interval must be between 0 (never on a schedule) and 8760 hours.")
        self.set_setting(VERIFY_INTERVAL_KEY, repr(float(hours)))

    # --- reading -----------------------------------------------------------------------------------------
    def versions(self, include_retired: bool = True) -> list[VersionRecord]:
        where = "" if include_retired else " where v.retired_at is null"
        with self.database.read() as db:
            rows = list(db.query(f"{_SELECT_VERSIONS}{where} order by m.name collate nocase, v.id"))
            default_id = self._default_id(db)
        return [self._record(row, default_id) for row in rows]

    def version(self, version_id: int) -> VersionRecord:
        with self.database.read() as db:
            rows = list(db.query(f"{_SELECT_VERSIONS} where v.id = ?", [version_id]))
            default_id = self._default_id(db)
        if not rows:
            raise UnknownModel(f"No model version with id {version_id} is registered.")
        return self._record(rows[0], default_id)

    def files(self, version_id: int) -> list[FileRecord]:
        with self.database.read() as db:
            rows = db.execute(
                "select path, size, sha256, mtime_ns from files where version_id = ? order by path", [version_id]
            ).fetchall()
        return [FileRecord(*row) for row in rows]

    def model_names(self) -> list[str]:
        with self.database.read() as db:
            return [row[0] for row in db.execute("select name from models order by name collate nocase")]

    def default_version(self) -> VersionRecord | None:
        with self.database.read() as db:
            default_id = self._default_id(db)
        if default_id is None:
            return None
        try:
            return self.version(default_id)
        except UnknownModel:
            return None

    def resolve(self, ref: str | int) -> VersionRecord:
        """A version by id, by "NAME:VERSION", or by "NAME" (its newest version that is not retired)."""
        if isinstance(ref, int):
            return self.version(ref)
        text = str(ref).strip()
        if not text:
            raise UnknownModel("Name a model as NAME or NAME:VERSION.")
        name, _, label = text.rpartition(":") if ":" in text else (text, "", "")
        with self.database.read() as db:
            model = db.execute("select id from models where name = ?", [name]).fetchone()
            if model is None:
                known = [row[0] for row in db.execute("select name from models order by name collate nocase")]
                hint = f" Registered models: {', '.join(known)}." if known else " No model is registered yet."
                raise UnknownModel(f"No model named '{name}' is registered.{hint}")
            versions = db.execute(
                "select id, label, retired_at from versions where model_id = ? order by id", [model[0]]
            ).fetchall()
        if label:
            matches = [row[0] for row in versions if row[1] == label]
            if not matches:
                labels = ", ".join(row[1] for row in versions)
                raise UnknownModel(f"Model '{name}' has no version '{label}'. Its versions: {labels}.")
            return self.version(matches[0])
        active = [row[0] for row in versions if row[2] is None]
        if not active:
            raise VersionRetired(f"Every version of '{name}' is retired. Name a version as {name}:VERSION to see it.")
        return self.version(active[-1])

    def load_history(self, version_id: int | None = None, limit: int = 200) -> list[LoadEvent]:
        where, parameters = ("where e.version_id = ?", [version_id]) if version_id is not None else ("", [])
        with self.database.read() as db:
            rows = db.execute(
                "select e.id, e.version_id, m.name || ':' || v.label, e.loaded_at, e.loaded_by, e.precision, "
                "e.device, e.outcome, e.detail, e.load_seconds from load_events e "
                "join versions v on v.id = e.version_id join models m on m.id = v.model_id "
                f"{where} order by e.id desc limit ?",
                parameters + [limit],
            ).fetchall()
        return [LoadEvent(*row) for row in rows]

    def next_label(self, model_name: str) -> str:
        with self.database.read() as db:
            model = db.execute("select id from models where name = ?", [model_name.strip()]).fetchone()
            return self._next_label(db, model[0]) if model else "v1"

    # --- import ------------------------------------------------------------------------------------------
    def import_model(
        self,
        path: str | Path,
        name: str | None = None,
        version: str | None = None,
        notes: str = "",
        registered_by: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        expected_files: dict[str, tuple[int, str]] | None = None,
    ) -> VersionRecord:
        """Register a Hugging Face folder or a GGUF file as a new version (of a new or an existing model).

        Hashes every file first (streaming; `progress` gets bytes/s; `cancel` stops it), then writes the
        version and its files in one transaction. `expected_files` (path → size, SHA-256, from a manifest)
        refuses files that differ. Raises InvalidModel, DuplicateImport, VersionExists, ImportCancelled,
        ChecksumMismatch, or a storage error; on any of them nothing was written.
        """
        # Imported here: the engine brings torch and transformers, which listing or verifying does not need.
        from engine.errors import ModelLoadError
        from engine.weights.inspection import describe_model

        from engine.weights.model_folder import resolve_model_path

        source = Path(path).expanduser()
        try:
            source = resolve_model_path(source)
            description = describe_model(source)
        except ModelLoadError as error:
            text = str(error)
            raise InvalidModel(f"{text}{'' if text.endswith(('.', '!', '?')) else '.'} Nothing was registered.") from error
        except OSError as error:
            raise InvalidModel(f"Cannot read {source}: {error.strerror}. Nothing was registered.") from error
        default_name = source.name.removesuffix(".gguf") if description.format == "gguf" else source.name
        name = check_name("model name", name or default_name)
        label = check_name("version", version) if version else None
        if label:
            self._refuse_existing_label(name, label)
        try:
            digests = hash_files(description.root, description.files, progress, cancel)
        except HashingCancelled as error:
            raise ImportCancelled("Import cancelled: nothing was registered.") from error
        except FileChangedWhileHashing as error:
            raise InvalidModel(
                f"{error.path} changed while it was being hashed. Import again once nothing writes to the model. "
                "Nothing was registered."
            ) from error
        except OSError as error:
            raise InvalidModel(
                f"Cannot read {error.filename or source}: {error.strerror}. Nothing was registered."
            ) from error
        if expected_files is not None:
            problems = compare_with_expected(digests, expected_files)
            if problems:
                raise ChecksumMismatch(
                    f"The files at {source} do not match the manifest: {describe_problems(problems)}. "
                    "Nothing was registered.",
                    problems,
                )
        if cancel is not None and cancel.is_set():
            raise ImportCancelled("Import cancelled: nothing was registered.")
        checksum = version_checksum((d.path, d.size, d.sha256) for d in digests)
        registered_at = now_iso()
        try:
            with self.database.write() as db:
                self._refuse_duplicate(db, checksum)
                model = db.execute("select id from models where name = ?", [name]).fetchone()
                model_id = model[0] if model else db["models"].insert({"name": name, "created_at": registered_at}).last_pk
                label = label or self._next_label(db, model_id)
                if db.execute("select 1 from versions where model_id = ? and label = ?", [model_id, label]).fetchone():
                    raise VersionExists(f"{name} already has a version '{label}'. Choose another version label.")
                version_id = db["versions"].insert(
                    {
                        "model_id": model_id,
                        "label": label,
                        "format": description.format,
                        "architecture": description.architecture,
                        "parameters": description.parameters,
                        "precision": description.precision,
                        "source_path": str(source),
                        "checksum": checksum,
                        "file_count": len(digests),
                        "total_bytes": sum(d.size for d in digests),
                        "registered_by": registered_by or current_user(),
                        "registered_at": registered_at,
                        "notes": notes,
                        "verify_state": "verified",
                        "last_checked_at": registered_at,
                        "last_check_kind": "full",
                        "last_full_check_at": registered_at,
                        "check_detail": f"Registered: {len(digests)} files hashed.",
                    }
                ).last_pk
                db["files"].insert_all(
                    {"version_id": version_id, "path": d.path, "size": d.size, "sha256": d.sha256, "mtime_ns": d.mtime_ns}
                    for d in digests
                )
        except sqlite3.IntegrityError as error:  # a unique constraint: the checks above make this a last resort
            raise VersionExists(f"{name} already has a version '{label or ''}'. Choose another version label.") from error
        return self.version(version_id)

    def _refuse_existing_label(self, name: str, label: str) -> None:
        with self.database.read() as db:
            row = db.execute(
                "select 1 from versions v join models m on m.id = v.model_id where m.name = ? and v.label = ?",
                [name, label],
            ).fetchone()
        if row:
            raise VersionExists(f"{name} already has a version '{label}'. Choose another version label.")

    def _refuse_duplicate(self, db, checksum: str) -> None:
        rows = list(db.query(f"{_SELECT_VERSIONS} where v.checksum = ? order by v.id limit 1", [checksum]))
        if rows:
            existing = self._record(rows[0], None)
            retired = ", now retired" if existing.retired else ""
            raise DuplicateImport(
                f"These files are already registered as {existing.ref} (by {existing.registered_by} on "
                f"{local_time(existing.registered_at)}{retired}): same SHA-256 for every file. Nothing was imported.",
                existing.ref,
            )

    # --- verification ------------------------------------------------------------------------------------
    def verify_version(
        self,
        version_id: int,
        force_full: bool = False,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        checked_by: str | None = None,
    ) -> VerificationReport:
        """Check a version's files and record the outcome (a failure marks it tampered).

        Quick check: every file is present with its recorded size and modification time. A full re-hash runs
        when asked (`force_full`, "Verify now"), when a size or time changed, when a file is missing, when the
        version failed before, and when its last full check is older than the schedule's interval.
        Raises HashingCancelled (nothing recorded then).
        """
        version = self.version(version_id)
        files = self.files(version_id)
        root = version.root
        problems: dict[str, FileProblem] = {}
        changed: list[str] = []
        for record in files:
            try:
                stat = os.stat(root / record.path)
            except FileNotFoundError:
                problems[record.path] = FileProblem(record.path, record.sha256, None, "missing")
            except OSError:
                problems[record.path] = FileProblem(record.path, record.sha256, None, "unreadable")
            else:
                if (stat.st_size, stat.st_mtime_ns) != (record.size, record.mtime_ns):
                    changed.append(record.path)
        if version.format == "hf":
            problems.update(unlisted_files(root, {record.path for record in files}))
        reason = None
        if not force_full:
            if problems:
                reason = next(iter(problems.values())).describe()
            elif changed:
                reason = f"{changed[0]} changed size or modification time"
            elif version.verify_state != "verified":
                reason = "it failed its last check"
            elif self._is_due(version, datetime.datetime.now(datetime.timezone.utc)):
                reason = f"its last full check is older than {self.verify_interval_hours:g} h"
        full = force_full or reason is not None
        new_times: dict[str, int] = {}
        if full:
            expected = {record.path: record for record in files}
            for name, outcome in hash_each(root, [r.path for r in files if r.path not in problems], progress, cancel):
                record = expected[name]
                if isinstance(outcome, FileDigest):
                    if (outcome.sha256, outcome.size) != (record.sha256, record.size):
                        problems[name] = FileProblem(name, record.sha256, outcome.sha256, "changed")
                    elif outcome.mtime_ns != record.mtime_ns:
                        new_times[name] = outcome.mtime_ns  # same bytes, touched: remember the new time
                elif isinstance(outcome, FileChangedWhileHashing):
                    problems[name] = FileProblem(name, record.sha256, None, "unstable")
                else:
                    problems[name] = FileProblem(name, record.sha256, None, "unreadable")
        recorded = {r.path for r in files}
        ordered = tuple(problems[r.path] for r in files if r.path in problems) + tuple(
            problem for path, problem in sorted(problems.items()) if path not in recorded
        )
        checked_at = now_iso()
        kind = "full" if full else "quick"
        detail = describe_problems(list(ordered)) if ordered else f"All {len(files)} files match ({kind} check)."
        with self.database.write() as db:
            db.execute(
                "update versions set verify_state = ?, last_checked_at = ?, last_check_kind = ?, check_detail = ?"
                + (", last_full_check_at = ?" if full else "")
                + " where id = ?",
                ["tampered" if ordered else "verified", checked_at, kind, detail]
                + ([checked_at] if full else [])
                + [version_id],
            )
            for name, mtime_ns in new_times.items():
                db.execute("update files set mtime_ns = ? where version_id = ? and path = ?", [mtime_ns, version_id, name])
            db["verifications"].insert(
                {"version_id": version_id, "checked_at": checked_at, "kind": kind, "ok": int(not ordered),
                 "detail": detail, "checked_by": checked_by or current_user()}
            )
        return VerificationReport(self.version(version_id), kind, ordered, checked_at, None if force_full else reason)

    def ensure_verified(
        self,
        version_id: int,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        checked_by: str | None = None,
    ) -> VerificationReport:
        """Verify before a load: raises ChecksumMismatch (naming the file, expected and found hashes) on failure."""
        report = self.verify_version(version_id, progress=progress, cancel=cancel, checked_by=checked_by)
        if not report.ok:
            raise ChecksumMismatch(
                f"{report.version.ref} failed verification and was not loaded: {describe_problems(list(report.problems))}. "
                "It is now marked as tampered; restore the original files, or import them as a new version.",
                list(report.problems),
            )
        return report

    def due_for_full_check(self, now: datetime.datetime | None = None) -> list[VersionRecord]:
        """Versions (not retired) whose last full re-hash is older than the schedule's interval."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return [v for v in self.versions(include_retired=False) if self._is_due(v, now)]

    def verification_history(self, version_id: int, limit: int = 50) -> list[dict]:
        with self.database.read() as db:
            return list(
                db.query(
                    "select checked_at, kind, ok, detail, checked_by from verifications where version_id = ? "
                    "order by id desc limit ?",
                    [version_id, limit],
                )
            )

    def _is_due(self, version: VersionRecord, now: datetime.datetime) -> bool:
        hours = self.verify_interval_hours
        if hours <= 0 or version.retired:
            return False
        if not version.last_full_check_at:
            return True
        last = parse_iso(version.last_full_check_at)
        return now - last >= datetime.timedelta(hours=hours)

    # --- administration ----------------------------------------------------------------------------------
    def set_default(self, version_id: int) -> VersionRecord:
        version = self.version(version_id)
        if version.retired:
            raise VersionRetired(f"{version.ref} is retired and cannot be the default. Choose another version.")
        self.set_setting(DEFAULT_VERSION_KEY, str(version_id))
        return self.version(version_id)

    def retire(self, version_id: int) -> VersionRecord:
        """Retire a version: it stays in the registry (and its history), but cannot be loaded."""
        version = self.version(version_id)
        if version.retired:
            return version
        with self.database.write() as db:
            db.execute("update versions set retired_at = ? where id = ?", [now_iso(), version_id])
            if self._default_id(db) == version_id:
                db.execute("delete from settings where key = ?", [DEFAULT_VERSION_KEY])
        return self.version(version_id)

    def record_load(
        self,
        version_id: int,
        outcome: str,
        precision: str | None = None,
        device: str | None = None,
        detail: str | None = None,
        load_seconds: float | None = None,
        loaded_by: str | None = None,
    ) -> None:
        with self.database.write() as db:
            db["load_events"].insert(
                {"version_id": version_id, "loaded_at": now_iso(), "loaded_by": loaded_by or current_user(),
                 "precision": precision, "device": device, "outcome": outcome, "detail": detail,
                 "load_seconds": load_seconds}
            )

    def converted_files(self, version_id: int) -> dict[str, str]:
        """SHA-256 by path of the GGUF version's converted copy, as recorded when it was converted (empty: none)."""
        with self.database.read() as db:
            rows = db.execute("select path, sha256 from converted_files where version_id = ?", [version_id]).fetchall()
        return dict(rows)

    def record_converted_files(self, version_id: int, files: Iterable[tuple[str, str]]) -> None:
        """Replace the record of the version's converted copy (after a fresh conversion)."""
        recorded_at = now_iso()
        with self.database.write() as db:
            db.execute("delete from converted_files where version_id = ?", [version_id])
            db["converted_files"].insert_all(
                {"version_id": version_id, "path": path, "sha256": sha256, "recorded_at": recorded_at}
                for path, sha256 in files
            )

    # --- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _default_id(db) -> int | None:
        row = db.execute("select value from settings where key = ?", [DEFAULT_VERSION_KEY]).fetchone()
        return int(row[0]) if row else None

    @staticmethod
    def _next_label(db, model_id: int) -> str:
        labels = {row[0] for row in db.execute("select label from versions where model_id = ?", [model_id])}
        number = len(labels) + 1
        while f"v{number}" in labels:
            number += 1
        return f"v{number}"

    @staticmethod
    def _record(row: dict, default_id: int | None) -> VersionRecord:
        return VersionRecord(**{name: row[name] for name in _VERSION_FIELDS}, is_default=row["id"] == default_id)


def unlisted_files(root: Path, listed: set[str]) -> dict[str, FileProblem]:
    """Problems with what a load would read beside the listed files: files added since (a chat_template.jinja
    changes every prompt), and links out of the folder or in a loop. The folder itself missing is left to the
    per-file checks."""
    from engine.weights.model_folder import scan_model_folder

    if not root.is_dir():
        return {}
    scan = scan_model_folder(root)
    problems = {p.path: FileProblem(p.path, "", None, "unsafe", str(p)) for p in scan.refused}
    for path in scan.files:
        if path not in listed and path not in problems:
            problems[path] = FileProblem(path, "", None, "added")
    return problems


def compare_with_expected(digests: list[FileDigest], expected: dict[str, tuple[int, str]]) -> list[FileProblem]:
    """Problems between hashed files and expected (size, SHA-256) by path: changed, missing or extra files."""
    found = {d.path: d for d in digests}
    problems = []
    for path, (size, sha256) in sorted(expected.items()):
        digest = found.get(path)
        if digest is None:
            problems.append(FileProblem(path, sha256, None, "missing"))
        elif (digest.size, digest.sha256) != (size, sha256):
            problems.append(FileProblem(path, sha256, digest.sha256, "changed"))
    for path in sorted(set(found) - set(expected)):
        problems.append(FileProblem(path, "", found[path].sha256, "extra"))
    return problems
