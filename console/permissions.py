"""Named permissions and the built-in roles. Checks happen in the services (`access.py`), never only in widgets."""

from __future__ import annotations

PERMISSIONS: dict[str, str] = {
    "chat:use": "Chat with the loaded model and run interactive tests",
    "metrics:view": "See telemetry, engine figures and alerts",
    "registry:view": "See registered models, versions, checksums and load history",
    "model:load": "Load and unload models",
    "model:register": "Import, verify, retire and set the default model version",
    "engine:configure": "Change engine settings: precision, batch size, max wait, queue limit",
    "bench:run": "Run benchmarks and tuning sweeps",
    "settings:view": "See the settings",
    "settings:edit": "Change the settings",
    "users:manage": "Create, change and delete users and roles",
    "audit:view": "See and export the audit log",
}

BUILTIN_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "admin": ("Everything, including users and settings", frozenset(PERMISSIONS)),
    "operator": (
        "Loads and registers models, tunes the engine, runs benchmarks",
        frozenset({"chat:use", "metrics:view", "registry:view", "model:load", "model:register",
                   "engine:configure", "bench:run", "settings:view"}),
    ),
    "tester": ("Chats and runs tests, views metrics", frozenset({"chat:use", "metrics:view", "registry:view", "settings:view"})),
    "viewer": ("Reads metrics and the registry", frozenset({"metrics:view", "registry:view", "settings:view"})),
}


def describe(permission: str) -> str:
    return PERMISSIONS.get(permission, permission)
