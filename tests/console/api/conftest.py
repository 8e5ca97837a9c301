"""A real API server on 127.0.0.1 (a free port) over a core with the tiny model loaded, and keys for roles."""

from __future__ import annotations

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


@pytest.fixture
def loaded_core(tmp_path, tiny_model_dir):
    from engine import ModelSpec

    core, admin = admin_core(tmp_path / "data")
    core.load_model(admin, ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
    yield core, admin
    core.api.close()
    core.shutdown()


@pytest.fixture
def api(loaded_core) -> RunningApi:
    core, admin = loaded_core
    return RunningApi(core, admin, core.api.start(admin, ApiConfig(port=0)))


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
