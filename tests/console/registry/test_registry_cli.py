"""`llm-console models …` for headless admins, and manifests that let a second workstation check the first."""

from __future__ import annotations

import json

import pytest

from console.cli.main import main
from tests.access_helpers import ensure_admin
from tests.registry_helpers import copy_model, flip_byte, open_registry, skip_embedded_registration


@pytest.fixture
def workstation(tmp_path, monkeypatch):
    """A data directory of its own, as on a workstation where the embedded model is already registered."""
    data = new_workstation(tmp_path / "workstation-a")
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(data))
    return data


def new_workstation(data):
    registry = open_registry(data / "registry.db")
    skip_embedded_registration(registry)
    registry.database.close()
    ensure_admin(data)
    return data


def versions_at(data):
    registry = open_registry(data / "registry.db")
    try:
        return registry.versions()
    finally:
        registry.database.close()


def registry_files(data, version_id: int):
    registry = open_registry(data / "registry.db")
    try:
        return registry.files(version_id)
    finally:
        registry.database.close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_then_list_shows_the_version_and_its_state(workstation, tiny_model_dir, capsys):
    code, out, _ = run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny", "--version", "2024-06",
                       "--notes", "lab build")
    assert code == 0
    assert out.startswith("Registered tiny:2024-06: 6 files")
    code, out, _ = run(capsys, "models", "list")
    assert code == 0
    line = next(line for line in out.splitlines() if "tiny:2024-06" in line)
    assert "hf" in line and "fp32" in line and "verified" in line and "by admin" in line  # the signed-in user


def test_importing_the_same_files_twice_says_so_and_fails(workstation, tiny_model_dir, capsys):
    assert run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")[0] == 0
    code, _, err = run(capsys, "models", "import", str(tiny_model_dir), "--name", "again")
    assert code == 1
    assert "error: These files are already registered as tiny:v1" in err


def test_verify_passes_then_fails_with_expected_and_found_hashes(workstation, tiny_model_copy, capsys):
    run(capsys, "models", "import", str(tiny_model_copy), "--name", "tiny")
    code, out, _ = run(capsys, "models", "verify", "tiny:v1")
    assert code == 0 and out.startswith("OK        tiny:v1")
    expected_sha = {f.path: f.sha256 for f in registry_files(workstation, 1)}["model.safetensors"]
    flip_byte(tiny_model_copy / "model.safetensors")
    code, out, err = run(capsys, "models", "verify")
    assert code == 1
    assert "TAMPERED  tiny:v1" in out
    assert "model.safetensors: changed" in out and f"expected {expected_sha}" in out and "found    " in out
    assert "1 of 1 versions failed verification" in err


def test_verify_due_checks_only_versions_past_their_interval(workstation, tiny_model_dir, capsys):
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")
    assert run(capsys, "models", "schedule", "2")[1].startswith("Every version is fully re-hashed when its last full check is older than 2 h")
    code, out, _ = run(capsys, "models", "verify", "--due")
    assert code == 0 and "No version is due" in out


def test_unknown_model_is_an_error_naming_what_exists(workstation, tiny_model_dir, capsys):
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")
    code, _, err = run(capsys, "models", "verify", "huge:v1")
    assert code == 1 and "No model named 'huge' is registered. Registered models: tiny." in err


def test_set_default_retire_and_history(workstation, tiny_model_dir, capsys):
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")
    assert run(capsys, "models", "set-default", "tiny")[1].strip() == "tiny:v1 is now the default model."
    assert "*  tiny:v1" in run(capsys, "models", "list")[1]
    assert "is retired" in run(capsys, "models", "retire", "tiny:v1")[1]
    assert "retired" in run(capsys, "models", "list")[1]
    assert "tiny:v1" not in run(capsys, "models", "list", "--active")[1]
    assert run(capsys, "models", "history")[1].strip() == "No loads recorded yet."


def test_a_manifest_lets_a_second_workstation_prove_it_has_the_same_files(workstation, tiny_model_dir, tmp_path, capsys, monkeypatch):
    manifest = tmp_path / "tiny.manifest.json"
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny", "--version", "prod-1")
    code, out, _ = run(capsys, "models", "export-manifest", "tiny:prod-1", "-o", str(manifest))
    assert code == 0 and "Wrote the manifest of tiny:prod-1" in out
    data = json.loads(manifest.read_text())
    assert data["model"] == "tiny" and data["version"] == "prod-1"
    assert {entry["path"] for entry in data["files"]} == {p.name for p in tiny_model_dir.iterdir()}

    second = new_workstation(tmp_path / "workstation-b")
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(second))
    copied = copy_model(tiny_model_dir, tmp_path / "b-models" / "tiny")
    code, out, _ = run(capsys, "models", "check-manifest", str(manifest), "--path", str(copied))
    assert code == 0 and f"OK        {copied} matches tiny:prod-1" in out
    code, out, _ = run(capsys, "models", "import-manifest", str(manifest), "--path", str(copied))
    assert code == 0 and out.startswith("Registered tiny:prod-1 from the manifest")
    assert versions_at(second)[0].checksum == data["checksum"]


def test_a_changed_copy_fails_the_manifest_check_and_is_not_registered(workstation, tiny_model_dir, tmp_path, capsys, monkeypatch):
    manifest = tmp_path / "tiny.manifest.json"
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")
    run(capsys, "models", "export-manifest", "tiny", "-o", str(manifest))
    copied = copy_model(tiny_model_dir, tmp_path / "b-models" / "tiny")
    flip_byte(copied / "tokenizer.json")
    (copied / "extra.bin").write_bytes(b"not in the manifest")
    second = new_workstation(tmp_path / "workstation-b")
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(second))
    code, out, _ = run(capsys, "models", "check-manifest", str(manifest), "--path", str(copied))
    assert code == 1
    assert "MISMATCH" in out and "tokenizer.json: changed" in out and "extra.bin: not in the manifest" in out
    code, out, _ = run(capsys, "models", "import-manifest", str(manifest), "--path", str(copied))
    assert code == 1 and "nothing was registered" in out
    assert versions_at(second) == []


def test_an_edited_manifest_is_refused(workstation, tiny_model_dir, tmp_path, capsys):
    manifest = tmp_path / "tiny.manifest.json"
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")
    run(capsys, "models", "export-manifest", "tiny", "-o", str(manifest))
    data = json.loads(manifest.read_text())
    data["files"][0]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    code, _, err = run(capsys, "models", "check-manifest", str(manifest))
    assert code == 1 and "its checksum does not match its list of files" in err


def test_a_manifest_with_an_escaping_path_is_refused(workstation, tmp_path, capsys):
    from console.registry.checksums import version_checksum

    files = [{"path": "../../etc/passwd", "size": 1, "sha256": "a" * 64}]
    manifest = tmp_path / "evil.json"
    manifest.write_text(json.dumps({
        "format": "llm-console-manifest", "manifest_version": 1, "model": "evil", "version": "v1",
        "model_format": "hf", "source_path": str(tmp_path), "checksum": version_checksum([("../../etc/passwd", 1, "a" * 64)]),
        "files": files,
    }))
    code, _, err = run(capsys, "models", "check-manifest", str(manifest))
    assert code == 1 and "unsafe file path '../../etc/passwd'" in err


def test_chat_refuses_a_tampered_registered_model(workstation, tiny_model_copy, capsys):
    run(capsys, "models", "import", str(tiny_model_copy), "--name", "tiny")
    flip_byte(tiny_model_copy / "config.json", offset=2)
    code, _, err = run(capsys, "chat", "hello", "--model", "tiny", "--quiet")
    assert code == 1
    assert "error: tiny:v1 failed verification and was not loaded: config.json changed" in err


def test_chat_loads_a_registered_model_by_name(workstation, tiny_model_dir, capsys):
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")
    code, out, err = run(capsys, "chat", "hello world", "--model", "tiny:v1", "--max-new-tokens", "5", "--precision", "fp32", "--device", "cpu")
    assert code == 0, err
    assert "[model] tiny:v1 · fp32 · cpu" in err
    assert run(capsys, "models", "history", "tiny")[1].split()[2] == "loaded"


def test_chat_prefers_a_registered_name_to_a_same_named_folder_here(workstation, tiny_model_dir, tmp_path, monkeypatch, capsys):
    run(capsys, "models", "import", str(tiny_model_dir), "--name", "tiny")
    monkeypatch.chdir(tmp_path)
    impostor = copy_model(tiny_model_dir, tmp_path / "tiny")
    flip_byte(impostor / "model.safetensors")
    code, _, err = run(capsys, "chat", "hello", "--model", "tiny", "--max-new-tokens", "2", "--precision", "fp32",
                       "--device", "cpu")
    assert code == 0, err
    assert "[model] tiny:v1 · fp32 · cpu" in err
    assert run(capsys, "models", "history", "tiny")[1].split()[2] == "loaded"


def test_chat_with_an_unregistered_bare_name_does_not_load_the_folder_of_that_name(workstation, tiny_model_dir, tmp_path,
                                                                                  monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    copy_model(tiny_model_dir, tmp_path / "tiny")
    code, _, err = run(capsys, "chat", "hello", "--model", "tiny", "--quiet")
    assert code == 1
    assert "error: No model named 'tiny' is registered" in err
    assert "write ./tiny" in err


def test_chat_loads_a_folder_here_when_it_is_written_as_a_path(workstation, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    copy_model(tiny_model_dir, tmp_path / "tiny")
    code, _, err = run(capsys, "chat", "hello", "--model", "./tiny", "--max-new-tokens", "2", "--precision", "fp32",
                       "--device", "cpu")
    assert code == 0, err
    assert "[model] tiny · fp32 · cpu" in err
