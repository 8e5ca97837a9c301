"""Version manifests: a JSON file of a version's paths, sizes and SHA-256, so another workstation can prove it
runs the same files. Export one here; on the other workstation, check local files against it or register
them from it (`Registry.import_model` with the manifest's expected files).
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from console.registry.checksums import FileChangedWhileHashing, FileDigest, ProgressCallback, hash_each, version_checksum
from console.errors import FileProblem, ManifestError
from console.registry.registry import Registry, compare_with_expected
from console.registry.records import VersionRecord
from console.storage.timestamps import now_iso

MANIFEST_FORMAT = "llm-console-manifest"
MANIFEST_VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    model: str
    version: str
    format: str
    architecture: str | None
    parameters: int | None
    precision: str | None
    source_path: str
    checksum: str
    files: tuple[ManifestFile, ...]
    registered_by: str | None = None
    registered_at: str | None = None
    exported_from: str | None = None
    exported_at: str | None = None
    notes: str = ""

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    @property
    def expected_files(self) -> dict[str, tuple[int, str]]:
        return {f.path: (f.size, f.sha256) for f in self.files}

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class ManifestCheck:
    manifest: Manifest
    checked_path: Path
    problems: tuple[FileProblem, ...]
    registered_as: VersionRecord | None  # a version here with the very same files, if any

    @property
    def ok(self) -> bool:
        return not self.problems


def build_manifest(registry: Registry, version_id: int) -> dict:
    version = registry.version(version_id)
    files = registry.files(version_id)
    return {
        "format": MANIFEST_FORMAT,
        "manifest_version": MANIFEST_VERSION,
        "model": version.model_name,
        "version": version.label,
        "model_format": version.format,
        "architecture": version.architecture,
        "parameters": version.parameters,
        "precision": version.precision,
        "source_path": version.source_path,
        "checksum": version.checksum,
        "total_bytes": version.total_bytes,
        "registered_by": version.registered_by,
        "registered_at": version.registered_at,
        "notes": version.notes,
        "exported_from": platform.node(),
        "exported_at": now_iso(),
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
    }


def manifest_json(registry: Registry, version_id: int) -> str:
    return json.dumps(build_manifest(registry, version_id), indent=2) + "\n"


def write_manifest(registry: Registry, version_id: int, destination: Path) -> Path:
    """Write the manifest atomically: a full disk or a crash never leaves half a manifest behind."""
    text = manifest_json(registry, version_id)
    destination = Path(destination).expanduser()
    handle = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".manifest-", dir=destination.parent)
        handle = Path(temporary)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(handle, destination)
    except OSError as error:
        if handle is not None:
            handle.unlink(missing_ok=True)
        raise ManifestError(f"Cannot write the manifest to {destination}: {error.strerror}.") from error
    return destination


def read_manifest(path: Path) -> Manifest:
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ManifestError(f"Cannot read the manifest {path}: {error.strerror}.") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path.name} is not a manifest: it is not valid JSON ({error}).") from error
    return parse_manifest(data, path.name)


def parse_manifest(data, name: str = "the manifest") -> Manifest:
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{name} is not an LLM Console manifest (its \"format\" is not \"{MANIFEST_FORMAT}\").")
    if data.get("manifest_version") != MANIFEST_VERSION:
        raise ManifestError(
            f"{name} is manifest version {data.get('manifest_version')}; this LLM Console reads version "
            f"{MANIFEST_VERSION}. Export it again, or upgrade LLM Console."
        )
    try:
        files = tuple(
            ManifestFile(_safe_path(entry["path"], name), int(entry["size"]), _sha256(entry["sha256"], name))
            for entry in data["files"]
        )
        manifest = Manifest(
            model=str(data["model"]),
            version=str(data["version"]),
            format=str(data["model_format"]),
            architecture=data.get("architecture"),
            parameters=data.get("parameters"),
            precision=data.get("precision"),
            source_path=str(data["source_path"]),
            checksum=str(data["checksum"]),
            files=files,
            registered_by=data.get("registered_by"),
            registered_at=data.get("registered_at"),
            exported_from=data.get("exported_from"),
            exported_at=data.get("exported_at"),
            notes=str(data.get("notes") or ""),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestError(f"{name} is incomplete or malformed ({error!r}).") from error
    if not files:
        raise ManifestError(f"{name} lists no files.")
    if version_checksum((f.path, f.size, f.sha256) for f in files) != manifest.checksum:
        raise ManifestError(f"{name} is inconsistent: its checksum does not match its list of files. It was edited.")
    return manifest


def _safe_path(value, name: str) -> str:
    path = PurePosixPath(str(value))
    if path.is_absolute() or ".." in path.parts or "\\" in str(value) or not str(value).strip():
        raise ManifestError(f"{name} names an unsafe file path '{value}': paths must stay inside the model folder.")
    return path.as_posix()


def _sha256(value, name: str) -> str:
    text = str(value).lower()
    if not _SHA256.match(text):
        raise ManifestError(f"{name} holds '{value}', which is not a SHA-256 checksum.")
    return text


def local_root(manifest: Manifest, local_path: Path | None) -> Path:
    """The folder the manifest's files are looked for in: the given path, or the manifest's own source path."""
    path = Path(local_path).expanduser() if local_path else Path(manifest.source_path)
    if manifest.format == "gguf" and (path.is_file() or path.suffix.lower() == ".gguf"):
        return path.parent
    return path


def check_manifest(
    registry: Registry,
    manifest: Manifest,
    local_path: Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> ManifestCheck:
    """Hash the local files and compare them with the manifest (changed, missing and, for a folder, extra
    files). Raises HashingCancelled."""
    root = local_root(manifest, local_path)
    if not root.is_dir():
        raise ManifestError(f"{root} does not exist here. Give the model's local path to check it.")
    names = [f.path for f in manifest.files]
    problems: list[FileProblem] = []
    if manifest.format == "hf":
        from engine.weights.model_folder import scan_model_folder

        scan = scan_model_folder(root)
        problems += [FileProblem(p.path, "", None, "unsafe", str(p)) for p in scan.refused]
        unsafe = {p.path for p in problems}
        names = [name for name in names if name not in unsafe]
        names += [name for name in scan.files if name not in set(names)]
    digests: list[FileDigest] = []
    expected = manifest.expected_files
    for name, outcome in hash_each(root, names, progress, cancel):
        if isinstance(outcome, FileDigest):
            digests.append(outcome)
        elif isinstance(outcome, FileNotFoundError):
            continue  # reported as missing below
        elif isinstance(outcome, FileChangedWhileHashing):
            problems.append(FileProblem(name, expected.get(name, ("", ""))[1], None, "unstable"))
        else:
            problems.append(FileProblem(name, expected.get(name, ("", ""))[1], None, "unreadable"))
    unreadable = {p.path for p in problems}
    problems += [p for p in compare_with_expected(digests, expected) if p.path not in unreadable]
    registered = None
    for version in registry.versions():
        if version.checksum == manifest.checksum:
            registered = version
            break
    return ManifestCheck(manifest, root, tuple(problems), registered)


def import_from_manifest(
    registry: Registry,
    manifest: Manifest,
    local_path: Path | None = None,
    registered_by: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> VersionRecord:
    """Register local files as the manifest's model and version, refusing them unless every file matches."""
    path = Path(local_path).expanduser() if local_path else Path(manifest.source_path)
    origin = f" on {manifest.exported_from}" if manifest.exported_from else ""
    notes = f"Registered from the manifest of {manifest.ref}{origin} (checksum {manifest.checksum[:16]}…)."
    if manifest.notes:
        notes += f" {manifest.notes}"
    return registry.import_model(
        path,
        name=manifest.model,
        version=manifest.version,
        notes=notes,
        registered_by=registered_by,
        progress=progress,
        cancel=cancel,
        expected_files=manifest.expected_files,
    )
