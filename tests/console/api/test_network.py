"""Where the API listens: TLS from the admin's certificate (1.3 preferred, 1.2 accepted), a port in use is a
typed error, CORS is off until origins are listed."""

from __future__ import annotations

import socket
import ssl
import subprocess

import httpx
import pytest

from console.api.config import ApiConfig, ApiConfigError, ApiPortInUse


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def tls_version(port: int, cafile, maximum: ssl.TLSVersion | None = None) -> str:
    context = ssl.create_default_context(cafile=str(cafile))
    if maximum is not None:
        context.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.version()


def test_tls_serves_https_preferring_tls_1_3(loaded_core, certificate):
    core, admin = loaded_core
    cert, key = certificate
    base_url = core.api.start(admin, ApiConfig(port=0, tls_cert=str(cert), tls_key=str(key)))

    assert base_url.startswith("https://")
    assert httpx.get(base_url.removesuffix("/v1") + "/health", verify=ssl.create_default_context(cafile=str(cert))).status_code == 200
    assert tls_version(core.api.server.port, cert) == "TLSv1.3"
    assert tls_version(core.api.server.port, cert, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


def test_a_certificate_without_its_key_is_refused(certificate):
    with pytest.raises(ApiConfigError, match="both a certificate"):
        ApiConfig(tls_cert=str(certificate[0])).validate()


def test_a_file_that_is_not_a_certificate_is_refused(loaded_core, tmp_path):
    core, admin = loaded_core
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")

    with pytest.raises(ApiConfigError, match="TLS certificate or key cannot be used"):
        core.api.start(admin, ApiConfig(port=0, tls_cert=str(junk), tls_key=str(junk)))
    assert not core.api.serving


def test_a_port_in_use_is_a_typed_error(loaded_core):
    core, admin = loaded_core
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        with pytest.raises(ApiPortInUse, match="already in use"):
            core.api.start(admin, ApiConfig(port=taken.getsockname()[1]))


def test_the_default_port_clashes_with_no_other_local_server():
    port = ApiConfig().port

    assert port not in (1234, 11434, 1337, 8000, 8001, 8002, 8080, 5050, 9479)
    assert ApiConfig().host == "127.0.0.1"


def test_cors_is_off_until_origins_are_listed(loaded_core):
    core, admin = loaded_core
    base_url = core.api.start(admin, ApiConfig(port=0))
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}

    assert "access-control-allow-origin" not in httpx.options(f"{base_url}/chat/completions", headers=preflight).headers
    core.api.stop(admin)
    base_url = core.api.start(admin, ApiConfig(port=0, cors_origins=("https://app.example",)))

    allowed = httpx.options(f"{base_url}/chat/completions", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
