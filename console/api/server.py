"""The API's HTTP server: uvicorn on its own thread and event loop, on a socket bound here first (so a port in
use is a typed error, not uvicorn's exit), with TLS 1.2 or newer when the admin gives a certificate. `stop`
stops accepting and lets running requests finish, for a bounded time.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading

import uvicorn

from console.api.config import ApiConfig, ApiConfigError, ApiPortInUse

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


class _Config(uvicorn.Config):
    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            # TLS 1.2 at least, as the deployment rules ask; OpenSSL prefers 1.3 when both ends have it.
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2


class _Server(uvicorn.Server):
    """Tells `ready` once it listens (or has failed), so start() returns only then."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event):
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets=None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ApiPortInUse(f"Port {port} on {host} is already in use, so the API cannot start. Choose another "
                               "port, or stop the program that listens there.") from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise ApiConfigError(f"{host} is not an address of this machine; the API cannot listen there.") from None
        raise ApiConfigError(f"The API cannot listen on {host}:{port}: {error.strerror}.") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class ApiServer:
    def __init__(self, service, config: ApiConfig):
        self.service = service
        self.config = config
        self.port = config.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        from console.api.app import create_app

        sock = bind(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        uvicorn_config = _Config(
            create_app(self.service), log_config=None, access_log=False, lifespan="off", server_header=False,
            ssl_certfile=self.config.tls_cert or None, ssl_keyfile=self.config.tls_key or None,
            timeout_keep_alive=30, limit_concurrency=4096, h11_max_incomplete_event_size=64 * 1024,
        )
        try:
            uvicorn_config.load()
        except (OSError, ssl.SSLError) as error:
            sock.close()
            raise ApiConfigError(f"The TLS certificate or key cannot be used: {error}. Give PEM files of a "
                                 "certificate and its private key.") from None
        ready = threading.Event()
        self._server = _Server(uvicorn_config, ready)

        def run() -> None:
            try:
                self._server.run(sockets=[sock])
            except BaseException as error:  # reported to start() below, or logged after it returned
                self._failure = error
                log.exception("the API server stopped")
            finally:
                sock.close()
                ready.set()

        self._thread = threading.Thread(target=run, name="llm-console-api", daemon=True)
        self._thread.start()
        ready.wait(START_TIMEOUT_S)
        if self._failure is not None or not self._server.started:
            self.stop(0)
            raise ApiConfigError(f"The API server did not start: {self._failure or 'no answer in time'}.")

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting; running requests get `grace_s` to finish, then they are cancelled."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.config.timeout_graceful_shutdown = max(0.0, grace_s)
        server.should_exit = True
        thread.join(grace_s + 10.0)
        self._server = self._thread = None

