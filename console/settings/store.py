"""Application settings: a fixed list of keys with types, ranges and the permission that may change each.

Values are validated, stored as JSON in the database's `settings` table, and every change is audited with
its old and new value. Engine keys need `engine:configure` (operators tune the engine); the rest need
`settings:edit` (administrators).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from console.access.guard import Guard, requires
from console.access.permissions import Permission
from console.access.principal import Principal
from console.storage.database import AppDatabase
from console.errors import ConsoleError
from engine.batching_settings import MAX_BATCH_SIZE, MAX_THREADS, MAX_WAIT_CAP_MS
from engine.weights.devices import DEVICES, PRECISIONS
from engine.compile_settings import COMPILE_MODES

PREFIX = "app."
PROMETHEUS_HOSTS = ("127.0.0.1", "::1", "localhost", "0.0.0.0")
MAX_NEW_TOKENS = 32768  # the longest reply the settings and the chat's control allow


class InvalidSetting(ConsoleError):
    """A setting's value is out of range or of the wrong kind; the message says what is allowed."""


@dataclass(frozen=True)
class SettingSpec:
    key: str
    label: str
    default: Any
    permission: Permission
    check: Callable[[Any], Any]  # returns the normalised value or raises InvalidSetting
    help: str = ""


@dataclass(frozen=True)
class Choice:
    """A check that also describes itself: the settings view lists `options` in a combo box."""

    options: tuple[str, ...]
    explanation: str = ""  # the refusal's wording, when "choose one of …" says too little

    def __call__(self, value: Any) -> str:
        if value not in self.options:
            raise InvalidSetting(self.explanation or f"choose one of {', '.join(self.options)}")
        return value


@dataclass(frozen=True)
class NumberRange:
    """A check that also describes itself: the settings view builds a spin box from `low`, `high` and `unit`."""

    kind: type
    low: float
    high: float
    unit: str = ""  # with its leading space, as shown after the number: " ms"

    def __call__(self, value: Any) -> Any:
        whole = " whole" if self.kind is int else ""
        span = f"from {self.low:g} to {self.high:g}{self.unit}"
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidSetting(f"must be a{whole} number {span}") from None
        except OverflowError:  # an integer too big for a float: out of range whatever the setting
            number = math.inf
        if isinstance(value, bool) or not self.low <= number <= self.high:  # also refuses inf and nan (1e400)
            raise InvalidSetting(f"must be {span}")
        if self.kind is int:
            if not number.is_integer():  # 8.9 would silently become 8
                raise InvalidSetting(f"must be a whole number {span} (got {value})")
            return int(number)
        return number


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting("must be true or false")
    return value


def _api_host(value: Any) -> str:
    from console.api.config import ApiConfigError, check_host

    try:
        return check_host(value if isinstance(value, str) else "")
    except ApiConfigError as error:
        raise InvalidSetting(str(error).rstrip(".")) from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidSetting("must be text")
    return value.strip()


def _origins(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(o, str) and (o == "*" or o.startswith(("http://", "https://")))
                                              for o in value):
        raise InvalidSetting("must be a list of origins such as [\"https://app.example\"] ([] switches CORS off)")
    return value


def _aliases(value: Any) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k and isinstance(v, str) and v
                                              for k, v in value.items()):
        raise InvalidSetting("must map names clients send to a model NAME[:VERSION], e.g. {\"gpt-4o-mini\": \"qwen2.5\"}")
    return value


def _alert_rules(value: Any) -> list:
    from console.telemetry.alerts import AlertRule
    from console.telemetry.errors import TelemetryError

    if not isinstance(value, list) or not all(isinstance(rule, dict) for rule in value):
        raise InvalidSetting("must be a list of rules")
    for rule in value:
        try:
            AlertRule(**rule).validate()
        except (TypeError, TelemetryError) as error:
            raise InvalidSetting(f"rule {rule.get('name', '?')!r} is invalid: {error}") from None
    return value


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("engine.device", "Default device", "auto", Permission.ENGINE_CONFIGURE, Choice(DEVICES)),
    SettingSpec("engine.precision", "Default precision", "auto", Permission.ENGINE_CONFIGURE, Choice(PRECISIONS)),
    SettingSpec("engine.max_batch_size", "Max batch size", 8, Permission.ENGINE_CONFIGURE, NumberRange(int, 1, MAX_BATCH_SIZE, " requests")),
    SettingSpec("engine.max_wait_ms", "Max wait", 5.0, Permission.ENGINE_CONFIGURE, NumberRange(float, 0, MAX_WAIT_CAP_MS, " ms")),
    SettingSpec("engine.compile", "Compile decode step", "auto", Permission.ENGINE_CONFIGURE, Choice(COMPILE_MODES),
                "auto: on a GPU only, while loading; on: also on a CPU, in the background (replies are slower "
                "for its 10-40 s), then about 1.25x faster; applies at the next model load"),
    SettingSpec("engine.threads", "Intra-op threads", 0, Permission.ENGINE_CONFIGURE, NumberRange(int, 0, MAX_THREADS, " threads"),
                "0 adapts: fewer threads while another program takes a core, more again when it ends; "
                "a number pins that many"),
    SettingSpec("engine.max_new_tokens", "Max new tokens", 256, Permission.ENGINE_CONFIGURE, NumberRange(int, 1, MAX_NEW_TOKENS, " tokens")),
    SettingSpec("telemetry.interval_s", "Telemetry interval", 1.0, Permission.SETTINGS_EDIT, NumberRange(float, 0.1, 60, " s")),
    SettingSpec("alerts.rules", "Alert rules", [], Permission.SETTINGS_EDIT, _alert_rules,
                "JSON list of rules; [] keeps the built-in defaults (edit them on the Telemetry tab)"),
    SettingSpec("prometheus.enabled", "Prometheus endpoint", False, Permission.SETTINGS_EDIT, _boolean),
    SettingSpec("prometheus.host", "Prometheus address", "127.0.0.1", Permission.SETTINGS_EDIT,
                Choice(PROMETHEUS_HOSTS, "must be 127.0.0.1 (this machine only), ::1, localhost or 0.0.0.0 (all interfaces)"),
                "an address other than loopback also needs prometheus.allow_remote"),
    SettingSpec("prometheus.allow_remote", "Serve Prometheus to the network", False, Permission.SETTINGS_EDIT, _boolean,
                "lets prometheus.host be 0.0.0.0: any machine that reaches the port reads the telemetry, "
                "without a password"),
    SettingSpec("prometheus.port", "Prometheus port", 9479, Permission.SETTINGS_EDIT, NumberRange(int, 1024, 65535)),
    SettingSpec("api.enabled", "Local API", False, Permission.SETTINGS_EDIT, _boolean,
                "serve the OpenAI-compatible API while the window is open"),
    SettingSpec("api.host", "API address", "127.0.0.1", Permission.SETTINGS_EDIT, _api_host,
                "127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one interface's address"),
    SettingSpec("api.port", "API port", 8741, Permission.SETTINGS_EDIT, NumberRange(int, 1024, 65535)),
    SettingSpec("api.require_keys", "API keys required", True, Permission.SETTINGS_EDIT, _boolean,
                "false is allowed only while the API listens on 127.0.0.1"),
    SettingSpec("api.tls_cert", "API TLS certificate", "", Permission.SETTINGS_EDIT, _text, "PEM file; empty: plain HTTP"),
    SettingSpec("api.tls_key", "API TLS private key", "", Permission.SETTINGS_EDIT, _text, "PEM file of the certificate's key"),
    SettingSpec("api.cors_origins", "API CORS origins", [], Permission.SETTINGS_EDIT, _origins, "[] keeps CORS off"),
    SettingSpec("api.model_aliases", "API model aliases", {}, Permission.SETTINGS_EDIT, _aliases,
                "names clients send, each mapped to a registered model NAME[:VERSION]"),
    SettingSpec("security.idle_lock_minutes", "Lock after idle", 15, Permission.SETTINGS_EDIT, NumberRange(int, 0, 1440, " min"),
                "0 never locks"),
)
SPECS = {spec.key: spec for spec in SETTINGS}


class SettingsStore:
    def __init__(self, database: AppDatabase, guard: Guard):
        self._database, self.guard = database, guard

    def get(self, key: str) -> Any:
        spec = self._spec(key)
        with self._database.read() as db:
            rows = list(db.query("select value from settings where key = ?", [PREFIX + key]))
        return json.loads(rows[0]["value"]) if rows else spec.default

    def all(self) -> dict[str, Any]:
        return {spec.key: self.get(spec.key) for spec in SETTINGS}

    @requires(Permission.SETTINGS_VIEW, "read the settings")
    def view(self, principal: Principal | None) -> dict[str, Any]:
        """Every setting with its value, for someone who may see the settings."""
        return self.all()

    def can_edit(self, principal: Principal | None, key: str) -> bool:
        return self.guard.can(principal, self._spec(key).permission)

    @requires(lambda call: SettingsStore._spec(call["key"]).permission,
              lambda call: f"change the setting '{SettingsStore._spec(call['key']).label}'")
    def set(self, principal: Principal | None, key: str, value: Any) -> Any:
        """Validate, store and audit (old and new value). Returns the stored value."""
        spec = self._spec(key)
        try:
            value = spec.check(value)
        except InvalidSetting as error:
            raise InvalidSetting(f"{spec.label}: {error}.") from None
        old = self.get(key)
        if old == value:
            return value
        with self._database.write() as db:  # the change and its audit entry commit together, or neither
            db["settings"].upsert({"key": PREFIX + key, "value": json.dumps(value)}, pk="key")
            self.guard.record(principal, "settings.change", key, db=db, old=old, new=value)
        return value

    @staticmethod
    def _spec(key: str) -> SettingSpec:
        if key not in SPECS:
            raise InvalidSetting(f"Unknown setting '{key}'.")
        return SPECS[key]
