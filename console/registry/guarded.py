"""The registry as the GUI and the CLI see it: every call checks the signed-in user's permission first,
and every change is written to the audit log. Unlisted methods are not reachable through it at all.
"""

from __future__ import annotations

from typing import Any

from console.access.control import Guard
from console.registry.registry import Registry

# method → (permission, audit action or None for reads)
POLICY: dict[str, tuple[str, str | None]] = {
    "versions": ("registry:view", None),
    "version": ("registry:view", None),
    "files": ("registry:view", None),
    "model_names": ("registry:view", None),
    "default_version": ("registry:view", None),
    "resolve": ("registry:view", None),
    "load_history": ("registry:view", None),
    "verification_history": ("registry:view", None),
    "due_for_full_check": ("registry:view", None),
    "next_label": ("registry:view", None),
    "setting": ("registry:view", None),
    "verify_interval_hours": ("registry:view", None),
    "import_model": ("model:register", "model.import"),
    "verify_version": ("model:register", "model.verify"),
    "set_default": ("model:register", "model.set_default"),
    "retire": ("model:register", "model.retire"),
    "set_verify_interval": ("model:register", "model.verify_schedule"),
}
_PROPERTIES = {"verify_interval_hours"}
_ACTOR_ARGUMENT = {"import_model": "registered_by", "verify_version": "checked_by"}  # recorded in the registry


def _describe(result: Any, args: tuple) -> str:
    for candidate in (result, getattr(result, "version", None), *args):
        ref = getattr(candidate, "ref", None)
        if ref:
            return str(ref)
    return " ".join(str(a) for a in args)[:200]


class GuardedRegistry:
    def __init__(self, registry: Registry, guard: Guard):
        self._registry = registry
        self._guard = guard

    @property
    def database(self):
        return self._registry.database

    def __getattr__(self, name: str) -> Any:
        if name not in POLICY:
            raise AttributeError(f"the registry does not offer '{name}' to signed-in users")
        permission, audit_action = POLICY[name]
        if name in _PROPERTIES:
            self._guard.require(permission, f"read the registry's {name.replace('_', ' ')}")
            return getattr(self._registry, name)
        method = getattr(self._registry, name)

        def guarded(*args, **kwargs):
            self._guard.require(permission, name.replace("_", " "))
            if name in _ACTOR_ARGUMENT:
                if kwargs.get(_ACTOR_ARGUMENT[name]) is None:
                    kwargs[_ACTOR_ARGUMENT[name]] = self._guard.user
            if audit_action is None:
                return method(*args, **kwargs)
            try:
                result = method(*args, **kwargs)
            except Exception as error:
                self._guard.record(audit_action, _describe(None, args), "failed", error=str(error))
                raise
            outcome = "ok"
            if getattr(result, "ok", True) is False:
                outcome = "failed"
            self._guard.record(audit_action, _describe(result, args), outcome)
            return result

        return guarded
