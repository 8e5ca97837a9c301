"""`llm-console api-keys`: create prints the secret once, list shows the key without it, revoke refuses it."""

from __future__ import annotations

from console.cli.main import main
from tests.access_helpers import audit_entries


def create(capsys, label: str) -> str:
    assert main(["api-keys", "create", "admin", "--name", label, "--expires", "30"]) == 0
    return capsys.readouterr().out.strip()


def test_create_prints_the_secret_once_and_list_shows_only_its_prefix(capsys):
    secret = create(capsys, "cli notebook")

    assert main(["api-keys", "list"]) == 0
    listing = capsys.readouterr().out

    assert secret.startswith("llmc_")
    assert "cli notebook" in listing and secret[:11] in listing and secret not in listing


def test_revoke_marks_the_key_revoked_and_is_audited(capsys, isolated_data_dir):
    create(capsys, "to revoke")
    main(["api-keys", "list"])
    key_id = next(line.split()[0] for line in capsys.readouterr().out.splitlines() if "to revoke" in line)

    assert main(["api-keys", "revoke", key_id]) == 0
    assert "Revoked API key" in capsys.readouterr().out
    main(["api-keys", "list"])

    assert "revoked" in next(line for line in capsys.readouterr().out.splitlines() if "to revoke" in line)
    assert any(entry.action == "api_key.revoke" for entry in audit_entries(isolated_data_dir, action="api_key."))


def test_a_key_for_an_unknown_user_exits_1_saying_why(capsys):
    assert main(["api-keys", "create", "nobody-here", "--name", "x"]) == 1
    assert "No user named 'nobody-here'" in capsys.readouterr().err
