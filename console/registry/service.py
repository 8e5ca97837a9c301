"""The registry as callers see it: one typed method per thing a caller may do, each declared with the permission
it needs (`@requires`), the principal first. Changes are audited with the caller as actor, and the registry
records the same caller as the one who registered or verified a version. The raw `Registry` stays inside.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import Callable, TypeVar

from console.access.guard import Guard, requires
from console.access.permissions import Permission
from console.access.principal import Principal
from console.registry import manifests
from console.registry.checksums import ProgressCallback
from console.registry.records import FileRecord, LoadEvent, VerificationReport, VersionRecord
from console.registry.registry import Registry

T = TypeVar("T")
VIEW, REGISTER = Permission.REGISTRY_VIEW, Permission.MODEL_REGISTER


def _describe(result: object, arguments: tuple) -> str:
    """The audit target: the version's ref when there is one, else the arguments."""
    for candidate in (result, getattr(result, "version", None), *arguments):
        ref = getattr(candidate, "ref", None)
        if ref:
            return str(ref)
    return " ".join(str(a) for a in arguments)[:200]


class RegistryService:
    def __init__(self, registry: Registry, guard: Guard):
        self._registry = registry
        self.guard = guard

    # --- reads -------------------------------------------------------------------------------------------
    @requires(VIEW, "list the registered versions")
    def versions(self, principal: Principal, include_retired: bool = True) -> list[VersionRecord]:
        return self._registry.versions(include_retired)

    @requires(VIEW, "see a registered version")
    def version(self, principal: Principal, version_id: int) -> VersionRecord:
        return self._registry.version(version_id)

    @requires(VIEW, "see a version's files")
    def files(self, principal: Principal, version_id: int) -> list[FileRecord]:
        return self._registry.files(version_id)

    @requires(VIEW, "list the model names")
    def model_names(self, principal: Principal) -> list[str]:
        return self._registry.model_names()

    @requires(VIEW, "see the default version")
    def default_version(self, principal: Principal) -> VersionRecord | None:
        return self._registry.default_version()

    @requires(VIEW, "look up {ref}")
    def resolve(self, principal: Principal, ref: str | int) -> VersionRecord:
        return self._registry.resolve(ref)

    @requires(VIEW, "see the load history")
    def load_history(self, principal: Principal, version_id: int | None = None, limit: int = 200) -> list[LoadEvent]:
        return self._registry.load_history(version_id, limit)

    @requires(VIEW, "see the verification history")
    def verification_history(self, principal: Principal, version_id: int, limit: int = 50) -> list[dict]:
        return self._registry.verification_history(version_id, limit)

    @requires(VIEW, "see which versions are due for a re-hash")
    def due_for_full_check(self, principal: Principal, now: datetime.datetime | None = None) -> list[VersionRecord]:
        return self._registry.due_for_full_check(now)

    @requires(VIEW, "see the next version label")
    def next_label(self, principal: Principal, model_name: str) -> str:
        return self._registry.next_label(model_name)

    @requires(VIEW, "read the registry's setting {key}")
    def setting(self, principal: Principal, key: str, default: str | None = None) -> str | None:
        return self._registry.setting(key, default)

    @requires(VIEW, "read the registry's verify interval hours")
    def verify_interval_hours(self, principal: Principal) -> float:
        return self._registry.verify_interval_hours

    @requires(VIEW, "export a manifest")
    def manifest_json(self, principal: Principal, version_id: int) -> str:
        return manifests.manifest_json(self._registry, version_id)

    @requires(VIEW, "export a manifest")
    def write_manifest(self, principal: Principal, version_id: int, destination: Path) -> Path:
        return manifests.write_manifest(self._registry, version_id, destination)

    @requires(VIEW, "check files against a manifest")
    def check_manifest(self, principal: Principal, manifest: manifests.Manifest, local_path: Path | None = None,
                       progress: ProgressCallback | None = None,
                       cancel: threading.Event | None = None) -> manifests.ManifestCheck:
        return manifests.check_manifest(self._registry, manifest, local_path, progress, cancel)

    # --- changes (audited) -------------------------------------------------------------------------------
    @requires(REGISTER, "import model")
    def import_model(self, principal: Principal, path: str | Path, name: str | None = None, version: str | None = None,
                     notes: str = "", progress: ProgressCallback | None = None,
                     cancel: threading.Event | None = None) -> VersionRecord:
        return self._audited(principal, "model.import", (path,), lambda: self._registry.import_model(
            path, name=name, version=version, notes=notes, registered_by=principal.user, progress=progress,
            cancel=cancel))

    @requires(REGISTER, "import model")
    def import_from_manifest(self, principal: Principal, manifest: manifests.Manifest, local_path: Path | None = None,
                             progress: ProgressCallback | None = None,
                             cancel: threading.Event | None = None) -> VersionRecord:
        return self._audited(principal, "model.import", (local_path or manifest.source_path,),
                             lambda: manifests.import_from_manifest(self._registry, manifest, local_path,
                                                                    principal.user, progress, cancel))

    @requires(REGISTER, "verify version")
    def verify_version(self, principal: Principal, version_id: int, force_full: bool = False,
                       progress: ProgressCallback | None = None,
                       cancel: threading.Event | None = None) -> VerificationReport:
        return self._audited(principal, "model.verify", (version_id,), lambda: self._registry.verify_version(
            version_id, force_full=force_full, progress=progress, cancel=cancel, checked_by=principal.user))

    @requires(REGISTER, "set default")
    def set_default(self, principal: Principal, version_id: int) -> VersionRecord:
        return self._audited(principal, "model.set_default", (version_id,),
                             lambda: self._registry.set_default(version_id))

    @requires(REGISTER, "retire")
    def retire(self, principal: Principal, version_id: int) -> VersionRecord:
        return self._audited(principal, "model.retire", (version_id,), lambda: self._registry.retire(version_id))

    @requires(REGISTER, "set verify interval")
    def set_verify_interval(self, principal: Principal, hours: float) -> None:
        return self._audited(principal, "model.verify_schedule", (hours,),
                             lambda: self._registry.set_verify_interval(hours))

    def _audited(self, principal: Principal, action: str, arguments: tuple, change: Callable[[], T]) -> T:
        try:
            result = change()
        except Exception as error:
            self.guard.record(principal, action, _describe(None, arguments), "failed", error=str(error))
            raise
        outcome = "failed" if getattr(result, "ok", True) is False else "ok"
        self.guard.record(principal, action, _describe(result, arguments), outcome)
        return result
