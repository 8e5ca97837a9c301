"""The access-control trust holes of issue 11, each through the entry point a user has (the CLI or a service):
the audit log's tail, the signer's password, parallel guesses, file permissions, injected names, user
enumeration, undecodable bytes, and actions committed without their audit entry."""

from __future__ import annotations

import io
import json
import stat
import sys
import threading

import pytest

from console.access.control import AccountLocked, AuthenticationFailed
from console.cli.main import main as cli_main
from tests.access_helpers import ROLE_PASSWORD, TEST_ADMIN, TEST_PASSWORD, admin_core, audit_entries, raw_database

NEW_PASSWORD = "amber-quarry-lattice-5"


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A data directory with the test administrator, which the CLI uses."""
    directory = tmp_path / "data"
    admin_core(directory)[0].shutdown()
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(directory))
    return directory


def run_sql(directory, *statements) -> None:
    database = raw_database(directory)
    try:
        with database.write() as db:
            for statement in statements:
                db.execute(statement)
    finally:
        database.close()


# --- 1. the audit log's tail --------------------------------------------------------------------------------
def test_cli_audit_verify_detects_the_whole_log_deleted_with_its_head_record(data, capsys):
    run_sql(data, "delete from audit_log", "delete from settings where key = 'audit_head'")
    assert cli_main(["audit", "verify"]) == 1
    assert "tampered" in capsys.readouterr().err


def test_cli_audit_verify_detects_the_newest_entries_deleted_and_the_head_record_rewritten(data, capsys):
    for _ in range(3):
        assert cli_main(["users", "list"]) == 0
    database = raw_database(data)
    with database.write() as db:
        newest = db.execute("select max(seq) from audit_log").fetchone()[0]
        db.execute("delete from audit_log where seq > ?", [newest - 2])
        seq, digest = db.execute("select seq, hash from audit_log order by seq desc limit 1").fetchone()
        db.execute("update settings set value = ? where key = 'audit_head'", [json.dumps({"seq": seq, "hash": digest})])
    database.close()
    capsys.readouterr()
    assert cli_main(["audit", "verify"]) == 1
    assert "deleted" in capsys.readouterr().err


def test_an_exported_head_catches_a_rewrite_of_both_the_database_and_the_head_file(data, tmp_path, capsys):
    exported = tmp_path / "head.json"
    assert cli_main(["audit", "export-head", "-o", str(exported)]) == 0
    head = json.loads(exported.read_text())
    assert set(head) == {"seq", "hash", "time"}
    database = raw_database(data)  # an intruder who can write both files rewrites the tail consistently
    with database.write() as db:
        # From the entry before the exported one: `audit verify` signs in first, and within the same second its
        # sign-in entry would be the exported entry again, to the byte (the log would really hold it).
        db.execute("delete from audit_log where seq >= ?", [head["seq"] - 1])
        seq, digest, at = db.execute("select seq, hash, at from audit_log order by seq desc limit 1").fetchone()
        db.execute("update settings set value = ? where key = 'audit_head'", [json.dumps({"seq": seq, "hash": digest})])
    database.close()
    (data / "audit-head.json").write_text(json.dumps({"seq": seq, "hash": digest, "time": at}))
    capsys.readouterr()
    assert cli_main(["audit", "verify", "--head", str(exported)]) == 1
    assert "exported head" in capsys.readouterr().err


def test_the_head_file_beside_the_database_is_readable_by_its_owner_only(data):
    assert stat.S_IMODE((data / "audit-head.json").stat().st_mode) == 0o600


# --- 2. the signer's password -------------------------------------------------------------------------------
def test_cli_users_create_gives_the_new_password_not_the_signers(data, monkeypatch):
    monkeypatch.setenv("LLM_CONSOLE_NEW_PASSWORD", NEW_PASSWORD)
    assert cli_main(["users", "create", "dana", "--role", "viewer"]) == 0
    core, _admin = admin_core(data)
    try:
        assert core.sign_in("dana", NEW_PASSWORD).user == "dana"
        with pytest.raises(AuthenticationFailed):
            core.sign_in("dana", TEST_PASSWORD)
    finally:
        core.shutdown()


def test_cli_reset_password_reads_the_new_password_from_standard_input(data, monkeypatch):
    monkeypatch.setenv("LLM_CONSOLE_NEW_PASSWORD", ROLE_PASSWORD)
    assert cli_main(["users", "create", "erin", "--role", "viewer"]) == 0
    monkeypatch.delenv("LLM_CONSOLE_NEW_PASSWORD")
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_PASSWORD + "\n"))
    assert cli_main(["users", "reset-password", "erin", "--password-stdin"]) == 0
    core, _admin = admin_core(data)
    try:
        assert core.sign_in("erin", NEW_PASSWORD).user == "erin"
    finally:
        core.shutdown()


def test_cli_users_create_without_a_new_password_refuses_rather_than_reuse_the_signers(data, capsys):
    assert cli_main(["users", "create", "fay", "--role", "viewer"]) == 1
    assert "LLM_CONSOLE_NEW_PASSWORD" in capsys.readouterr().err


# --- 3. parallel guesses ------------------------------------------------------------------------------------
def test_thirty_parallel_wrong_guesses_end_with_the_account_locked(tmp_path):
    core, _admin = admin_core(tmp_path / "data")
    start = threading.Barrier(30)

    def guess() -> None:
        start.wait()
        try:
            core.sign_in(TEST_ADMIN, "wrong-guess-number")
        except AuthenticationFailed:
            pass

    threads = [threading.Thread(target=guess) for _ in range(30)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        with pytest.raises(AccountLocked):
            core.sign_in(TEST_ADMIN, TEST_PASSWORD)
    finally:
        core.shutdown()


# --- 5. file permissions ------------------------------------------------------------------------------------
def test_the_data_directory_and_database_files_are_private(tmp_path):
    directory = tmp_path / "data"
    core, _admin = admin_core(directory)
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for name in ("registry.db", "registry.db-wal", "registry.db-shm"):
            assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    finally:
        core.shutdown()


def test_loose_permissions_of_an_existing_data_directory_are_fixed_on_start(tmp_path):
    directory = tmp_path / "data"
    admin_core(directory)[0].shutdown()
    directory.chmod(0o755)
    (directory / "registry.db").chmod(0o644)
    core, _admin = admin_core(directory)
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / "registry.db").stat().st_mode) == 0o600
    finally:
        core.shutdown()


# --- 7. injected names --------------------------------------------------------------------------------------
def test_a_name_typed_at_sign_in_is_stored_neither_in_clear_nor_with_control_characters(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    try:
        with pytest.raises(AuthenticationFailed):
            core.sign_in("forged\n     9 admin ok user.create root\x1b[2Jmy-secret-passphrase", "x")
        stored = json.dumps([entry.__dict__ for entry in core.audit_entries(admin, limit=3)])
        assert "my-secret-passphrase" not in stored and "\\u001b" not in stored and "\\n" not in stored
    finally:
        core.shutdown()


def test_cli_audit_list_prints_control_characters_escaped(data, capsys):
    database = raw_database(data)
    from console.access.audit_log import AuditLog

    AuditLog(database).append("someone", "test.event", "evil\x1b[2J\nline")
    database.close()
    capsys.readouterr()
    assert cli_main(["audit", "list", "--action", "test."]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J\\x0aline" in out


# --- 8. user enumeration ------------------------------------------------------------------------------------
def test_an_unknown_user_is_locked_out_like_a_real_one(tmp_path):
    core, _admin = admin_core(tmp_path / "data")
    try:
        for name in ("ghost", TEST_ADMIN):
            for _ in range(5):
                with pytest.raises(AuthenticationFailed, match="Wrong user name or password"):
                    core.sign_in(name, "wrong-guess-number")
            with pytest.raises(AccountLocked, match=f"{name} is locked for another 30 s"):
                core.sign_in(name, "wrong-guess-number")
    finally:
        core.shutdown()


def test_an_unknown_user_costs_one_password_hash_like_a_wrong_password(tmp_path, monkeypatch):
    import hashlib

    from console.access import passwords

    core, _admin = admin_core(tmp_path / "data")
    calls = []
    real = hashlib.scrypt
    monkeypatch.setattr(passwords.hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    try:
        counts = []
        for name in ("nobody-here", TEST_ADMIN, "nobody-else"):
            calls.clear()
            with pytest.raises(AuthenticationFailed):
                core.sign_in(name, "wrong-guess-number")
            counts.append(len(calls))
        assert counts[1:] == [1, 1] and counts[0] <= 2  # the first unknown may compute the dummy hash once
    finally:
        core.shutdown()


# --- 15. undecodable bytes ----------------------------------------------------------------------------------
def test_cli_a_user_name_that_is_not_utf8_gives_an_error_not_a_traceback(data, capsys):
    assert cli_main(["--user", "adm\udcffin", "users", "list"]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_a_new_password_that_is_not_utf8_gives_an_error_not_a_traceback(data, monkeypatch, capsys):
    monkeypatch.setenv("LLM_CONSOLE_NEW_PASSWORD", "violet-\udcfeharbour-3")
    assert cli_main(["users", "passwd"]) == 1
    assert capsys.readouterr().err.startswith("error: ")


# --- 16. an action and its audit entry ----------------------------------------------------------------------
AUDIT_REFUSES = ("create trigger audit_refuses before insert on audit_log when new.action = '{}' "
                 "begin select raise(abort, 'the audit entry cannot be written'); end")


def test_a_user_is_not_created_when_its_audit_entry_cannot_be_written(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    run_sql(tmp_path / "data", AUDIT_REFUSES.format("user.create"))
    try:
        with pytest.raises(Exception, match="audit entry cannot be written"):
            core.access.create_user(admin, "gil", ROLE_PASSWORD, "viewer")
        assert "gil" not in {user.name for user in core.access.users(admin)}
    finally:
        core.shutdown()


def test_a_setting_is_not_changed_when_its_audit_entry_cannot_be_written(tmp_path):
    core, admin = admin_core(tmp_path / "data")
    run_sql(tmp_path / "data", AUDIT_REFUSES.format("settings.change"))
    try:
        with pytest.raises(Exception, match="audit entry cannot be written"):
            core.settings.set(admin, "engine.max_batch_size", 16)
        assert core.settings.get("engine.max_batch_size") == 8
        assert not audit_entries(tmp_path / "data", action="settings.change")
    finally:
        core.shutdown()
