"""A principal per call: one core serves many callers at once, each checked with its account as it is now,
and every guarded service method declares what it needs."""

from __future__ import annotations

import inspect
import threading

import pytest

from console.access.guard import PermissionDenied, declared_permission
from console.registry.service import RegistryService
from tests.access_helpers import ROLE_PASSWORD, admin_core


@pytest.fixture
def signed_in(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    yield core, admin
    core.shutdown()


def test_a_deleted_admins_open_principal_cannot_create_an_admin(signed_in):
    core, admin = signed_in
    core.access.create_user(admin, "second", ROLE_PASSWORD, "admin")
    second = core.sign_in("second", ROLE_PASSWORD)
    core.access.delete_user(admin, "second")
    with pytest.raises(PermissionDenied, match="no longer has an account"):
        core.access.create_user(second, "intruder", ROLE_PASSWORD, "admin")
    assert "intruder" not in {user.name for user in core.access.users(admin)}
    denial = core.audit_entries(admin, action="access.denied")[0]
    assert (denial.actor, denial.target) == ("second", "create user intruder")


def test_a_demoted_admins_open_principal_loses_the_admin_rights_at_once(signed_in):
    core, admin = signed_in
    core.access.create_user(admin, "second", ROLE_PASSWORD, "admin")
    second = core.sign_in("second", ROLE_PASSWORD)
    core.access.set_role(admin, "second", "viewer")
    with pytest.raises(PermissionDenied, match=r"second \(viewer\) may not list users"):
        core.access.users(second)


def test_many_principals_are_served_at_once_each_with_its_own_rights(signed_in):
    core, admin = signed_in
    roles = ("admin", "operator", "tester", "viewer") * 4
    principals = []
    for index, role in enumerate(roles):
        core.access.create_user(admin, f"user-{index}", ROLE_PASSWORD, role)
        principals.append(core.sign_in(f"user-{index}", ROLE_PASSWORD, channel="api"))
    outcomes: dict[str, str] = {}
    start = threading.Barrier(len(principals))

    def call(principal) -> None:
        start.wait()
        try:
            core.access.users(principal)
            outcomes[principal.user] = "allowed"
        except PermissionDenied:
            outcomes[principal.user] = "denied"

    threads = [threading.Thread(target=call, args=(principal,)) for principal in principals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == {f"user-{i}": "allowed" if role == "admin" else "denied" for i, role in enumerate(roles)}


def test_every_public_registry_service_method_declares_its_permission():
    public = [name for name, member in inspect.getmembers(RegistryService, inspect.isfunction)
              if not name.startswith("_")]
    assert public and [name for name in public if declared_permission(getattr(RegistryService, name)) is None] == []
