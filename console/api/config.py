"""Where and how the API listens: address, port, TLS files, whether keys are required, CORS origins and model
aliases, read from the settings and checked together (another interface needs keys; TLS needs both files)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path

from console.errors import ConsoleError

# Clashes with none of LM Studio 1234, Ollama 11434, Jan 1337, vLLM 8000, Triton 8000-8002, llama-server 8080,
# nvitop-exporter 5050, nor our Prometheus endpoint 9479.
DEFAULT_PORT = 8741
DEFAULT_HOST = "127.0.0.1"
LOOPBACK_NAMES = ("localhost",)


class ApiConfigError(ConsoleError):
    """The API cannot listen as configured; the message says what to change."""


class ApiPortInUse(ApiConfigError):
    """Another program listens on the API's port."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str) -> str:
    host = (host or "").strip()
    if host in LOOPBACK_NAMES:
        return host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ApiConfigError(f"'{host}' is not an address to listen on: give an IP address such as 127.0.0.1 "
                             "(this machine only), 0.0.0.0 (every interface) or one interface's address.") from None
    return host


@dataclass(frozen=True)
class ApiConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    require_keys: bool = True
    tls_cert: str = ""
    tls_key: str = ""
    cors_origins: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)  # name a client sends -> the model NAME[:VERSION] it means

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def base_url(self, port: int | None = None) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "localhost") else "[::1]" if self.host == "::" else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{port or self.port}/v1"

    def changed(self, **changes) -> "ApiConfig":
        return replace(self, **changes).validate()

    def validate(self) -> "ApiConfig":
        check_host(self.host)
        if not isinstance(self.port, int) or not (self.port == 0 or 1024 <= self.port <= 65535):
            raise ApiConfigError(f"The API port must be from 1024 to 65535 (got {self.port!r}).")
        if not self.loopback and not self.require_keys:
            raise ApiConfigError(f"Keys cannot be switched off while the API listens on {self.host}: anyone on the "
                                 "network could use the model. Listen on 127.0.0.1, or require keys.")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ApiConfigError("TLS needs both a certificate file and its private key file.")
        for label, path in (("certificate", self.tls_cert), ("private key", self.tls_key)):
            if path and not Path(path).is_file():
                raise ApiConfigError(f"The TLS {label} file {path} does not exist or is not a file.")
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ApiConfigError(f"A CORS origin is a scheme and host such as https://app.example (got {origin!r}).")
        return self

    @classmethod
    def from_settings(cls, settings) -> "ApiConfig":
        return cls(
            host=settings.get("api.host"),
            port=settings.get("api.port"),
            require_keys=settings.get("api.require_keys"),
            tls_cert=settings.get("api.tls_cert"),
            tls_key=settings.get("api.tls_key"),
            cors_origins=tuple(settings.get("api.cors_origins")),
            aliases=dict(settings.get("api.model_aliases")),
        )
