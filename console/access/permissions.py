"""Named permissions and the built-in roles. Checks happen in the services (`console/access/guard.py`),
never only in widgets."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """One permission per kind of action. A StrEnum, so stored role rows ("chat:use") compare equal."""

    CHAT_USE = "chat:use"
    METRICS_VIEW = "metrics:view"
    REGISTRY_VIEW = "registry:view"
    MODEL_LOAD = "model:load"
    MODEL_REGISTER = "model:register"
    ENGINE_CONFIGURE = "engine:configure"
    BENCH_RUN = "bench:run"
    SETTINGS_VIEW = "settings:view"
    SETTINGS_EDIT = "settings:edit"
    USERS_MANAGE = "users:manage"
    AUDIT_VIEW = "audit:view"
    CONVERSATIONS_VIEW_ALL = "conversations:view_all"


PERMISSIONS: dict[Permission, str] = {
    Permission.CHAT_USE: "Chat with the loaded model and run interactive tests",
    Permission.METRICS_VIEW: "See telemetry, engine figures and alerts",
    Permission.REGISTRY_VIEW: "See registered models, versions, checksums and load history",
    Permission.MODEL_LOAD: "Load and unload models",
    Permission.MODEL_REGISTER: "Import, verify, retire and set the default model version",
    Permission.ENGINE_CONFIGURE: "Change engine settings: precision, batch size, max wait, queue limit",
    Permission.BENCH_RUN: "Run benchmarks and tuning sweeps",
    Permission.SETTINGS_VIEW: "See the settings",
    Permission.SETTINGS_EDIT: "Change the settings",
    Permission.USERS_MANAGE: "Create, change and delete users and roles",
    Permission.AUDIT_VIEW: "See and export the audit log",
    Permission.CONVERSATIONS_VIEW_ALL: "See every user's saved conversations (audited)",
}

BUILTIN_ROLES: dict[str, tuple[str, frozenset[Permission]]] = {
    "admin": ("Everything, including users and settings", frozenset(Permission)),
    "operator": (
        "Loads and registers models, tunes the engine, runs benchmarks",
        frozenset({Permission.CHAT_USE, Permission.METRICS_VIEW, Permission.REGISTRY_VIEW, Permission.MODEL_LOAD,
                   Permission.MODEL_REGISTER, Permission.ENGINE_CONFIGURE, Permission.BENCH_RUN,
                   Permission.SETTINGS_VIEW}),
    ),
    "tester": ("Chats and runs tests, views metrics",
               frozenset({Permission.CHAT_USE, Permission.METRICS_VIEW, Permission.REGISTRY_VIEW,
                          Permission.SETTINGS_VIEW})),
    "api_consumer": ("Uses the model through the local API, reads metrics (for API keys)",
                     frozenset({Permission.CHAT_USE, Permission.METRICS_VIEW})),
    "viewer": ("Reads metrics and the registry",
               frozenset({Permission.METRICS_VIEW, Permission.REGISTRY_VIEW, Permission.SETTINGS_VIEW})),
}


def describe(permission: str) -> str:
    return PERMISSIONS.get(permission, permission)
