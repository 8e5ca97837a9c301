"""The local API as a service of the console: who a request acts as (its key's user, as a principal per call),
which models it may name, and the server's life (start, stop, what listens where). The window's API tab and
`llm-console serve` both drive this; `console/api/app.py` holds the HTTP routes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from console.access.permissions import Permission
from console.access.principal import Principal
from console.api.config import ApiConfig
from console.api.errors import ApiError
from console.api.keys import ApiKey, ApiKeyStore
from console.api.usage import UsageMeter
from engine import GenerationRequest, RequestHandle, StreamEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """One request's caller: the principal its checks run with, and the key it came with (None: keys off)."""

    principal: Principal
    key: ApiKey | None = None

    @property
    def key_id(self) -> int | None:
        return self.key.id if self.key else None


@dataclass(frozen=True)
class ServedModel:
    id: str
    created: int
    owned_by: str
    alias_of: str | None = None

    def card(self) -> dict:
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by}


class ApiService:
    def __init__(self, core, database, config: ApiConfig | None = None):
        """Built by ConsoleCore (`core.api`); `core` is the guarded service the requests go through."""
        self.core = core
        self.keys = ApiKeyStore(database, core.guard)
        self.usage = UsageMeter(database)
        self.config = config or ApiConfig.from_settings(core.settings)
        self.owner: Principal | None = None  # who started the server: keyless requests act as them
        self.loading: str | None = None  # the model being loaded for the server, when `serve` loads one
        self.server = None  # ApiServer while serving
        self._loaded_at: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- the server ------------------------------------------------------------------------------------------
    @property
    def serving(self) -> bool:
        return self.server is not None and self.server.running

    @property
    def base_url(self) -> str:
        return self.config.base_url(self.server.port if self.server is not None else None)

    def start(self, principal: Principal, config: ApiConfig | None = None) -> str:
        """Listen as configured (checked first: another interface needs keys); returns the base URL."""
        from console.api.server import ApiServer

        self.core.guard.require(principal, Permission.SETTINGS_EDIT, "start the local API")
        config = (config or self.config).validate()
        with self._lock:
            if self.serving:
                return self.base_url
            self.config, self.owner = config, _api_principal(principal)
            server = ApiServer(self, config)
            server.start()
            self.server = server
            self.usage.start()
        self.core.guard.record(principal, "api.start", self.base_url, host=config.host, port=server.port,
                               tls=config.tls, keys_required=config.require_keys)
        return self.base_url

    def stop(self, principal: Principal | None = None, grace_s: float = 10.0) -> None:
        """Stop accepting, let running requests finish for up to `grace_s`, then close."""
        with self._lock:
            server, self.server = self.server, None
        if server is None:
            return
        server.stop(grace_s)
        self.usage.stop()
        self.core.guard.record(principal or self.owner, "api.stop", self.config.base_url(server.port))

    # --- who is calling --------------------------------------------------------------------------------------
    def caller(self, authorization: str | None) -> Caller:
        """The caller of a request from its Authorization header (InvalidApiKey when a key is needed and wrong)."""
        secret = _bearer(authorization)
        if secret is None and not self.config.require_keys and self.config.loopback and self.owner is not None:
            return Caller(self.owner)
        key = self.keys.resolve(secret)
        role = self.core.guard.current_role(Principal(key.user, "", channel="api")) or ""
        return Caller(Principal(key.user, role, channel="api", api_key_id=str(key.id)), key)

    def require(self, caller: Caller, permission: Permission, action: str) -> None:
        self.core.guard.require(caller.principal, permission, action)

    # --- models ----------------------------------------------------------------------------------------------
    def served_models(self) -> list[ServedModel]:
        """The loaded model, then the aliases the admin mapped to it."""
        info = self.core.model_info
        if info is None:
            return []
        created = self._loaded_at.setdefault(info.name, int(time.time()))
        models = [ServedModel(info.name, created, "llm-console")]
        for alias, target in sorted(self.config.aliases.items()):
            if _names(target, info.name):
                models.append(ServedModel(alias, created, "llm-console", alias_of=info.name))
        return models

    def resolve_model(self, name: str) -> ServedModel:
        """The served model a request names, or 404 listing what is served: never a silent switch."""
        models = self.served_models()
        for model in models:
            if model.id == name or (model.alias_of is None and _names(name, model.id)):
                return model
        served = ", ".join(model.id for model in models) or "none (no model is loaded)"
        raise ApiError(404, f"The model '{name}' is not served here. Served: {served}.", param="model",
                       code="model_not_found")

    def context_length(self) -> int | None:
        info = self.core.model_info
        return info.context_length if info is not None else None

    @property
    def model_loading(self) -> bool:
        return self.loading is not None or self.core.model_loading

    def metrics_registry(self):
        """The telemetry's Prometheus figures, as `/metrics` of the Telemetry tab serves them."""
        from console.api.errors import service_unavailable
        from console.telemetry.prometheus_exporter import telemetry_registry

        if self.core.telemetry is None:
            raise service_unavailable("Telemetry is not running, so there are no metrics yet.", "telemetry_off")
        return telemetry_registry(self.core.telemetry.service)

    # --- requests --------------------------------------------------------------------------------------------
    def submit(self, caller: Caller, request: GenerationRequest,
               on_event: Callable[[StreamEvent], None]) -> RequestHandle:
        """Through the same guarded service as the window's chat (`chat:use`), into the same batch."""
        return self.core.submit(caller.principal, request, on_event=on_event)

    def close(self) -> None:
        self.stop()


def _api_principal(principal: Principal) -> Principal:
    return Principal(principal.user, principal.role, channel="api")


def _names(reference: str, model_id: str) -> bool:
    """Whether `reference` (NAME or NAME:VERSION) names the model `model_id`."""
    return reference == model_id or reference == model_id.split(":", 1)[0]


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None
