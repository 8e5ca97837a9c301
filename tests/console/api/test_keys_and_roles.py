"""Keys act as their users: the role decides what a key may do, through the same checks as the window; keys
are stored hashed, audited when created or revoked, and their usage is counted per day."""

from __future__ import annotations

import httpx
import openai
import pytest

from console.access.guard import PermissionDenied
from console.api.config import ApiConfig, ApiConfigError
from console.api.keys import ApiKeyError
from tests.access_helpers import audit_entries, raw_database

QUESTION = [{"role": "user", "content": "hello"}]
CHAT_ROLES = ["admin", "operator", "tester", "api_consumer"]


@pytest.mark.parametrize("role", CHAT_ROLES)
def test_roles_with_chat_use_may_chat(api, role):
    reply = api.client(role).chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=2)

    assert reply.usage.completion_tokens >= 1


def test_a_viewer_key_may_not_chat(api):
    with pytest.raises(openai.PermissionDeniedError) as refused:
        api.client("viewer").chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=2)

    assert "chat:use" in refused.value.message


@pytest.mark.parametrize("role", CHAT_ROLES + ["viewer"])
def test_roles_with_metrics_view_may_scrape(api, role):
    api.core.start_telemetry().service.sample_once()

    assert httpx.get(f"{api.root}/metrics", headers=api.headers(role)).status_code == 200


def test_a_role_without_metrics_view_may_not_scrape(api):
    api.core.access.create_role(api.admin, "chat_only", {"chat:use"})
    api.core.access.create_user(api.admin, "carol", "staple-lantern-orbit-7", "chat_only")
    secret = api.core.api.keys.create(api.admin, "carol", "carol's notebook").secret

    response = httpx.get(f"{api.root}/metrics", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


def test_a_refused_request_is_audited_with_its_key(api):
    api.client("viewer").models  # the key exists before the call
    httpx.post(f"{api.base_url}/chat/completions", headers=api.headers("viewer"),
               json={"model": "tiny-llama", "messages": QUESTION})

    denied = audit_entries(api.core.data_dir, action="access.denied")

    assert any(entry.actor == "viewer" and '"channel": "api"' in entry.details and "api_key" in entry.details
               for entry in denied)


def test_demoting_the_user_takes_effect_on_the_next_request(api):
    client = api.client("tester")
    client.chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=1)
    api.core.access.set_role(api.admin, "tester", "viewer")

    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=1)


def test_a_revoked_key_is_refused_at_once(api):
    client = api.client("tester")
    key_id = next(key.id for key in api.core.api.keys.keys(api.admin) if key.user == "tester")
    api.core.api.keys.revoke(api.admin, key_id)

    with pytest.raises(openai.AuthenticationError) as refused:
        client.models.list()
    assert "revoked" in refused.value.message


def test_an_expired_key_is_refused(api):
    created = api.core.api.keys.create(api.admin, "admin", "short-lived", expires_days=1)
    database = raw_database(api.core.data_dir)
    with database.write() as db:  # a day later
        db.execute("update api_keys set expires_at = '2000-01-01T00:00:00+00:00' where id = ?", [created.key.id])
    database.close()

    response = httpx.get(f"{api.base_url}/models", headers={"Authorization": f"Bearer {created.secret}"})

    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_the_secret_is_stored_only_as_its_hash(api):
    created = api.core.api.keys.create(api.admin, "admin", "notebook")
    database = raw_database(api.core.data_dir)
    with database.read() as db:
        dump = "\n".join(db.conn.iterdump())
    database.close()

    assert created.secret not in dump
    assert created.key.prefix in dump and created.secret.startswith(created.key.prefix)


def test_creating_and_revoking_a_key_are_audited(api):
    created = api.core.api.keys.create(api.admin, "admin", "grafana")
    api.core.api.keys.revoke(api.admin, created.key.id)

    actions = [entry.action for entry in audit_entries(api.core.data_dir, action="api_key.")]

    assert "api_key.create" in actions and "api_key.revoke" in actions


def test_only_user_managers_create_keys(loaded_core, tmp_path):
    from tests.access_helpers import core_as

    core, admin = loaded_core
    core.access.create_user(admin, "olga", "staple-lantern-orbit-7", "operator")
    operator = core.sign_in("olga", "staple-lantern-orbit-7")

    with pytest.raises(PermissionDenied):
        core.api.keys.create(operator, "olga", "mine")


def test_a_key_for_an_unknown_user_is_refused(api):
    with pytest.raises(ApiKeyError, match="No user named 'ghost'"):
        api.core.api.keys.create(api.admin, "ghost", "boo")


def test_usage_counts_requests_tokens_and_errors_per_key(api):
    client = api.client("tester")
    reply = client.chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=3)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny-llama", messages=QUESTION, n=3)
    api.core.api.usage.flush()

    key_id = next(key.id for key in api.core.api.keys.keys(api.admin) if key.user == "tester")
    day = api.core.api.usage.usage()[key_id]

    assert (day.requests, day.errors) == (2, 1)
    assert (day.prompt_tokens, day.completion_tokens) == (reply.usage.prompt_tokens, reply.usage.completion_tokens)


def test_keys_cannot_be_switched_off_beyond_loopback():
    with pytest.raises(ApiConfigError, match="Keys cannot be switched off"):
        ApiConfig(host="0.0.0.0", require_keys=False).validate()


def test_without_keys_on_loopback_requests_act_as_the_owner(loaded_core):
    core, admin = loaded_core
    base_url = core.api.start(admin, ApiConfig(port=0, require_keys=False))

    reply = httpx.get(f"{base_url}/models")

    assert reply.status_code == 200 and reply.json()["data"][0]["id"] == "tiny-llama"


def test_starting_the_api_needs_settings_edit(loaded_core):
    core, admin = loaded_core
    core.access.create_user(admin, "tess", "staple-lantern-orbit-7", "tester")
    tester = core.sign_in("tess", "staple-lantern-orbit-7")

    with pytest.raises(PermissionDenied):
        core.api.start(tester, ApiConfig(port=0))
