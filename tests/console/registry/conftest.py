"""Fixtures of the registry's tests: a core on a data directory of its own, and its signed-in administrator."""

from __future__ import annotations

import pytest

from tests.access_helpers import admin_core


@pytest.fixture
def signed_in(tmp_path):
    instance, admin = admin_core(tmp_path / "data")
    yield instance, admin
    instance.shutdown()


@pytest.fixture
def core(signed_in):
    return signed_in[0]


@pytest.fixture
def admin(signed_in):
    return signed_in[1]
