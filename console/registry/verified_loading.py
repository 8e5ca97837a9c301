"""Loading a registered model version: re-check its files, refuse the load on any mismatch, load it through
the engine, and record the load (or its refusal) in the registry's history.

The check is quick (sizes and modification times) unless a file changed, the version failed before, or its
last full re-hash is older than the schedule's interval: then every file is re-hashed first. A GGUF version's
converted copy in the cache is checked against the checksums recorded at its conversion (`converted_files`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from console.registry.checksums import HashProgress
from console.errors import ChecksumMismatch, UnknownModel, VersionRetired
from console.registry.registry import Registry, current_user
from console.storage.timestamps import local_time
from console.units import format_rate
from engine import InferenceEngine, LoadedModelInfo, ModelSpec
from engine.weights.loader import ProgressCallback

VERIFY_SHARE = 0.3  # of the progress bar, when the files are re-hashed before the load


@dataclass(frozen=True)
class VersionLoadSpec:
    """A registered version to load: "NAME", "NAME:VERSION" or a version id."""

    ref: str | int
    precision: str = "auto"
    device: str = "auto"
    name: str | None = None  # shown while it loads


def names_a_path(text: str) -> bool:
    """How a `--model` value that is no registered name is told to be a path: it contains a `/`, starts with
    `.` or `~`, or ends with .gguf. A bare word never loads a same-named folder from the current directory."""
    return "/" in text or text.startswith((".", "~")) or text.lower().endswith(".gguf")


def model_target(registry: Registry, text: str, precision: str = "auto", device: str = "auto") -> ModelSpec | VersionLoadSpec:
    """What `--model TEXT` loads: a registered NAME[:VERSION] wins (verified, and its load recorded); else a
    value that looks like a path loads as it is (not verified); anything else is an unknown name."""
    name = (text.rpartition(":")[0] if ":" in text else text).strip()
    names = registry.model_names()
    if name in names:
        return VersionLoadSpec(text, precision, device)
    if names_a_path(text):
        return ModelSpec(text, precision=precision, device=device)
    if Path(text).expanduser().exists():
        raise UnknownModel(
            f"No model named '{text}' is registered (registered: {', '.join(names) or 'none yet'}). To load the "
            f"folder or file '{text}' in this directory without verification, write ./{text}."
        )
    return VersionLoadSpec(text, precision, device)  # loading it says which names are registered


def load_registered_version(
    engine: InferenceEngine,
    registry: Registry,
    ref: str | int,
    precision: str = "auto",
    device: str = "auto",
    progress: ProgressCallback | None = None,
    loaded_by: str | None = None,
) -> LoadedModelInfo:
    """Blocking (hashing and loading take seconds): the GUI calls it from a worker thread."""
    report = progress or (lambda _fraction, _message: None)
    user = loaded_by or current_user()
    version = registry.resolve(ref)
    if version.retired:
        message = f"{version.ref} was retired on {local_time(version.retired_at)} and cannot be loaded. Choose another version."
        registry.record_load(version.id, "refused", precision, device, message, loaded_by=user)
        raise VersionRetired(message)

    hashed = False

    def on_hash(step: HashProgress) -> None:
        nonlocal hashed
        hashed = True
        report(VERIFY_SHARE * step.fraction, f"Verifying {step.current_file or version.ref} · {format_rate(step.bytes_per_second)}")

    report(0.0, f"Checking the files of {version.ref}")
    try:
        registry.ensure_verified(version.id, progress=on_hash, checked_by=user)
    except ChecksumMismatch as error:
        registry.record_load(version.id, "refused", precision, device, str(error), loaded_by=user)
        raise

    def on_load(fraction: float | None, message: str) -> None:
        report(VERIFY_SHARE + (1 - VERIFY_SHARE) * fraction if hashed and fraction is not None else fraction, message)

    # A GGUF file loads from its converted copy in the cache, trusted only with the checksums recorded here.
    recorded = registry.converted_files(version.id) if version.format == "gguf" else None
    spec = ModelSpec(version.source_path, precision=precision, device=device, name=version.ref, converted_files=recorded)
    try:
        info = engine.load(spec, on_load)
    except Exception as error:
        registry.record_load(version.id, "failed", precision, device, str(error), loaded_by=user)
        raise
    if recorded is not None and dict(info.converted_files) != recorded:
        registry.record_converted_files(version.id, info.converted_files)
    registry.record_load(version.id, "loaded", info.precision, info.device, None, info.load_seconds, user)
    return info
