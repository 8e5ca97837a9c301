"""Fixtures of the registry's tests."""

from __future__ import annotations

import pytest

from tests.access_helpers import admin_core


@pytest.fixture
def core(tmp_path):
    """A core signed in as the administrator, on a data directory of its own."""
    instance = admin_core(tmp_path / "data")
    yield instance
    instance.shutdown()
