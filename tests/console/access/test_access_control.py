"""Access control in the service layer: the role × permission matrix, sign-in and lock-out, password rules,
the last administrator, settings, and the tamper-evident audit log."""

from __future__ import annotations

import shutil

import pytest

from console.access.control import AccessControl, AccountLocked, AuthenticationFailed, PermissionDenied, UserError
from console.settings.store import InvalidSetting
from console.access.audit_log import AuditLog
from console.cli.main import main as cli_main
from console.access.passwords import WeakPassword
from console.access.permissions import BUILTIN_ROLES
from engine import ModelSpec, SamplingParams
from tests.access_helpers import ROLE_PASSWORD, TEST_ADMIN, TEST_PASSWORD, admin_core, core_as, raw_database

ROLES = tuple(BUILTIN_ROLES)


def guarded_actions(tiny_model_dir, scratch):
    """permission → an action through the services that needs it (its other errors do not matter here)."""
    return {
        "model:load": lambda core, who: core.load_model(who, ModelSpec(str(tiny_model_dir), device="cpu")),
        "chat:use": lambda core, who: core.chat(who, [{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=2)),
        "registry:view": lambda core, who: core.registry.versions(who),
        "model:register": lambda core, who: core.registry.import_model(
            who, shutil.copytree(tiny_model_dir, scratch / f"m-{who.user}"), name=f"tiny-{who.user}"),
        "engine:configure": lambda core, who: core.configure_engine(who, max_batch_size=4),
        "bench:run": lambda core, who: core.benchmark(who, [1], 2, baselines=False, report=lambda _m: None),
        "metrics:view": lambda core, who: core.engine_snapshot(who),
        "settings:view": lambda core, who: core.settings.view(who),
        "settings:edit": lambda core, who: core.settings.set(who, "telemetry.interval_s", 2.0),
        "users:manage": lambda core, who: core.access.create_user(who, f"new-{who.user}", ROLE_PASSWORD, "viewer"),
        "audit:view": lambda core, who: core.audit_entries(who, limit=5),
        "conversations:view_all": lambda core, who: core.conversations.list_all(who),
    }


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """One core serving a principal of every built-in role, as the desktop, the CLI and the API would."""
    data = tmp_path_factory.mktemp("matrix") / "data"
    core, admin = admin_core(data)
    principals = {"admin": admin}
    for role in ROLES[1:]:
        core.access.create_user(admin, role, ROLE_PASSWORD, role)
        principals[role] = core.sign_in(role, ROLE_PASSWORD)
    yield core, principals
    core.shutdown()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("permission", sorted(guarded_actions(None, None)))
def test_every_role_against_every_guarded_action(matrix, role, permission, tiny_model_dir, tmp_path):
    core, principals = matrix
    who = principals[role]
    if permission == "bench:run" and core.model_info is None:
        core.load_model(principals["admin"], ModelSpec(str(tiny_model_dir), device="cpu"))  # the bench needs a model
    action = guarded_actions(tiny_model_dir, tmp_path)[permission]
    allowed = permission in BUILTIN_ROLES[role][1]
    if allowed:
        try:
            action(core, who)
        except PermissionDenied as error:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"{role} was refused {permission}: {error}")
        except Exception:
            pass  # e.g. no model loaded yet: not a permission matter
    else:
        with pytest.raises(PermissionDenied, match=permission):
            action(core, who)
        denial = core.audit_entries(principals["admin"], limit=1)[0]
        assert (denial.action, denial.outcome, denial.actor) == ("access.denied", "denied", role)


def test_first_admin_is_created_once_and_there_is_no_default_account(tmp_path):
    from console.core import ConsoleCore

    core = ConsoleCore(data_dir=tmp_path / "data")
    try:
        assert core.access.needs_first_admin()
        with pytest.raises(AuthenticationFailed):
            core.sign_in("admin", "admin")
        principal = core.create_first_admin("root", "a-long-pass-phrase")
        assert (principal.user, principal.role) == ("root", "admin") and core.can(principal, "users:manage")
        with pytest.raises(UserError, match="already exists"):
            core.create_first_admin("other", "different-phrase-2")
    finally:
        core.shutdown()


@pytest.mark.parametrize("password, rule", [
    ("", "empty"), ("short1", "too short"), ("aaaaaaaaaaaa", "repeats one character"),
    ("carol-is-great", "user name"), ("password123", "common passwords"), ("Dragon12345", "common passwords"),
    ("QWERTYUIOP123", "common passwords"), ("p@ssw0rd123", "common passwords"), ("Football123", "common passwords"),
])
def test_weak_passwords_are_refused_with_the_rule(tmp_path, password, rule):
    core, admin = admin_core(tmp_path / "data")
    try:
        with pytest.raises(WeakPassword, match=rule):
            core.access.create_user(admin, "carol", password, "tester")
    finally:
        core.shutdown()


def test_the_common_password_list_holds_thousands_of_long_entries():
    from console.access.passwords import MIN_LENGTH, common_passwords

    long_ones = [password for password in common_passwords() if len(password) >= MIN_LENGTH]
    assert len(long_ones) >= 5000 and all(password == password.lower() for password in common_passwords())


def test_wrong_password_and_unknown_user_give_the_same_message_and_are_audited(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    try:
        for name in (TEST_ADMIN, "mallory"):
            with pytest.raises(AuthenticationFailed, match="Wrong user name or password"):
                core.access.sign_in(name, "not-the-password")
        reasons = [e.details for e in core.audit_entries(admin, action="auth.sign_in", outcome="failed")]
        assert any("unknown user" in r for r in reasons) and any("wrong password" in r for r in reasons)
    finally:
        core.shutdown()


def test_five_failures_lock_the_account_for_a_growing_delay(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    now = [1_000_000.0]
    database = raw_database(tmp_path / "data")
    access = AccessControl(database, AuditLog(database), clock=lambda: now[0])
    try:
        for _ in range(5):
            with pytest.raises(AuthenticationFailed):
                access.sign_in(TEST_ADMIN, "wrong-password-x")
        with pytest.raises(AccountLocked, match="locked for another 30 s"):
            access.sign_in(TEST_ADMIN, TEST_PASSWORD)  # even the right password
        now[0] += 31
        for _ in range(5):
            with pytest.raises(AuthenticationFailed):
                access.sign_in(TEST_ADMIN, "wrong-password-x")
        with pytest.raises(AccountLocked, match="another 60 s"):
            access.sign_in(TEST_ADMIN, TEST_PASSWORD)
        now[0] += 61
        assert access.sign_in(TEST_ADMIN, TEST_PASSWORD).role == "admin"
        assert core.audit_entries(admin, action="auth.lockout")
    finally:
        database.close()
        core.shutdown()


def test_the_last_administrator_cannot_be_deleted_or_demoted(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    try:
        with pytest.raises(UserError, match="last administrator"):
            core.access.delete_user(admin, TEST_ADMIN)
        with pytest.raises(UserError, match="last administrator"):
            core.access.set_role(admin, TEST_ADMIN, "viewer")
        core.access.create_user(admin, "second", ROLE_PASSWORD, "admin")
        core.access.delete_user(admin, TEST_ADMIN)
        second = core.sign_in("second", ROLE_PASSWORD)
        assert [u.name for u in core.access.users(second)] == ["second"]
    finally:
        core.shutdown()


def test_a_custom_role_grants_exactly_its_permissions(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    try:
        core.access.create_role(admin, "auditor", {"audit:view", "metrics:view"})
        core.access.create_user(admin, "aud", ROLE_PASSWORD, "auditor")
        core.sign_out(admin)
        auditor = core.sign_in("aud", ROLE_PASSWORD)
        assert core.audit_entries(auditor, limit=1)
        with pytest.raises(PermissionDenied, match="model:load"):
            core.unload_model(auditor)
    finally:
        core.shutdown()


def test_changing_a_password_needs_the_current_one(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    try:
        with pytest.raises(AuthenticationFailed, match="current password is wrong"):
            core.access.change_password(admin, "not-it-at-all", "brand-new-phrase-9")
        core.access.change_password(admin, TEST_PASSWORD, "brand-new-phrase-9")
        assert core.access.sign_in(TEST_ADMIN, "brand-new-phrase-9")
    finally:
        core.shutdown()


def test_settings_are_validated_stored_and_audited_with_old_and_new(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    try:
        with pytest.raises(InvalidSetting, match="Max wait: must be from 0 to 200 ms"):
            core.settings.set(admin, "engine.max_wait_ms", 500)
        core.settings.set(admin, "engine.max_batch_size", 16)
        assert core.settings.get("engine.max_batch_size") == 16
        change = core.audit_entries(admin, action="settings.change")[0]
        assert change.target == "engine.max_batch_size" and '"new": 16' in change.details and '"old": 8' in change.details
    finally:
        core.shutdown()


def test_an_operator_may_tune_the_engine_but_not_edit_admin_settings(tmp_path):
    core, operator = core_as(tmp_path / "data", "operator")
    try:
        core.settings.set(operator, "engine.max_wait_ms", 20.0)
        with pytest.raises(PermissionDenied, match="settings:edit"):
            core.settings.set(operator, "prometheus.enabled", True)
    finally:
        core.shutdown()


def tampered(tmp_path, sql: str):
    """Four entries written through the log, then `sql` run on the file as an intruder would."""
    core, admin = admin_core(tmp_path / "data")
    database = raw_database(tmp_path / "data")
    try:
        for index in range(4):
            AuditLog(database).append(TEST_ADMIN, "test.event", f"target-{index}")
        with database.write() as db:
            db.execute(sql)
    finally:
        database.close()
    return core, admin


@pytest.mark.parametrize("sql, seq, words", [
    ("update audit_log set target = 'forged' where seq = 3", 3, "was edited"),
    ("delete from audit_log where seq = 2", 2, "missing"),
    ("delete from audit_log where seq = (select max(seq) from audit_log)", None, "newest entries"),
])
def test_audit_verify_names_the_first_edited_or_deleted_entry(tmp_path, sql, seq, words):
    core, admin = tampered(tmp_path, sql)
    try:
        result = core.verify_audit(admin)
        assert not result.ok and words in result.problem
        if seq is not None:
            assert result.first_bad_seq == seq
    finally:
        core.shutdown()


def test_an_untouched_audit_log_verifies(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    try:
        core.guard.record(admin, "test.event")
        assert core.verify_audit(admin).ok
    finally:
        core.shutdown()


def test_cli_audit_verify_names_an_entry_edited_with_raw_sql(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    core, _admin = tampered(tmp_path, "update audit_log set details = '{\"forged\": true}' where seq = 4")
    core.shutdown()
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(data))
    assert cli_main(["audit", "verify"]) == 1
    assert "entry 4 (test.event by admin) was edited" in capsys.readouterr().err


def test_cli_commands_refuse_a_wrong_password(tmp_path, monkeypatch, capsys):
    admin_core(tmp_path / "data")[0].shutdown()
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLM_CONSOLE_PASSWORD", "definitely-wrong-1")
    assert cli_main(["models", "list"]) == 1
    assert "Wrong user name or password" in capsys.readouterr().err


def test_cli_without_an_administrator_says_how_to_create_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(tmp_path / "empty"))
    assert cli_main(["models", "list"]) == 1
    assert "llm-console users create-admin" in capsys.readouterr().err
    assert cli_main(["users", "create-admin", "boss"]) == 0  # LLM_CONSOLE_PASSWORD from the test environment
    monkeypatch.setenv("LLM_CONSOLE_USER", "boss")
    assert cli_main(["users", "list"]) == 0
    assert "boss" in capsys.readouterr().out


def test_audit_log_is_append_only_through_the_service(tmp_path):
    core, _admin = admin_core(tmp_path / "data")
    try:
        log = core._audit_log
        assert not hasattr(log, "delete") and not hasattr(log, "update")
    finally:
        core.shutdown()


def test_the_compile_setting_applies_at_the_next_load_and_the_audit_names_the_forward_pass(
        tmp_path, tiny_model_dir, monkeypatch):
    import json

    monkeypatch.delenv("LLM_CONSOLE_COMPILE")
    core, admin = admin_core(tmp_path / "data")
    try:
        assert core._engine.compile_decode == "auto"
        core.settings.set(admin, "engine.compile", "off")
        core.load_model(admin, ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
        assert core._engine.compile_decode == "off"
        loaded = core.audit_entries(admin, action="model.load")[-1]
        assert json.loads(loaded.details)["decoder"] == "lean"
        with pytest.raises(InvalidSetting, match="choose one of auto, on, off"):
            core.settings.set(admin, "engine.compile", "always")
        core.settings.set(admin, "engine.compile", "on")
        monkeypatch.setenv("LLM_CONSOLE_COMPILE", "off")  # the environment wins over the stored setting
        core.load_model(admin, ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
        assert core._engine.compile_decode == "off"
    finally:
        core.shutdown()
