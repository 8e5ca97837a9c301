"""A real API server on 127.0.0.1 (a free port) over a core with the tiny model loaded, and keys for roles."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import pytest

from console.api.config import ApiConfig
from tests.access_helpers import ROLE_PASSWORD, admin_core


@dataclass
class RunningApi:
    core: object
    admin: object
    base_url: str
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def key(self, role: str = "admin") -> str:
        """A key of a user named after `role` (created on first use)."""
        if role not in self.secrets:
            users = {user.name for user in self.core.access.users(self.admin)}
            if role not in users and role != "admin":
                self.core.access.create_user(self.admin, role, ROLE_PASSWORD, role)
            self.secrets[role] = self.core.api.keys.create(self.admin, role, f"{role} key").secret
        return self.secrets[role]

    def client(self, role: str = "admin", **options):
        from openai import OpenAI

        options.setdefault("max_retries", 0)
        return OpenAI(base_url=self.base_url, api_key=self.key(role), **options)

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(role)}"}


@contextlib.contextmanager
def core_with_tiny_model(data_dir, tiny_model_dir):
    from engine import ModelSpec

    core, admin = admin_core(data_dir)
    try:
        core.load_model(admin, ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
        yield core, admin
    finally:
        core.shutdown()


@pytest.fixture
def loaded_core(tmp_path, tiny_model_dir):
    with core_with_tiny_model(tmp_path / "data", tiny_model_dir) as loaded:
        yield loaded


@pytest.fixture
def api(loaded_core) -> RunningApi:
    """A server of the test's own: tests that change keys, roles or engine settings."""
    core, admin = loaded_core
    return RunningApi(core, admin, core.api.start(admin, ApiConfig(port=0)))


@pytest.fixture(scope="module")
def module_api(tmp_path_factory, tiny_model_dir) -> RunningApi:
    """One server for a module whose tests only ask questions (a core and a load cost a second or more)."""
    with core_with_tiny_model(tmp_path_factory.mktemp("api-data"), tiny_model_dir) as (core, admin):
        yield RunningApi(core, admin, core.api.start(admin, ApiConfig(port=0)))


def wait_until(predicate, timeout: float = 10.0) -> None:
    """Wait for `predicate()` to hold, checking as events arrive (a bounded wait, never a fixed sleep)."""
    import threading
    import time

    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        tick.wait(0.01)
