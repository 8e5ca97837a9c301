"""Faults around the registry: a database locked by another process, a full disk, a newer or damaged database.
Each says what happened and loses nothing that was registered before."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from console.core import ConsoleCore
from console.storage.database import open_database
from console.errors import DatabaseLocked, DatabaseTooNew, DiskFull, ManifestError
from console.registry.manifests import write_manifest
from tests.registry_helpers import copy_model, open_registry

HOLD_WRITE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("insert into settings (key, value) values ('held', 'by another process')")
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our standard input
connection.execute("ROLLBACK")
"""


@pytest.fixture
def registry(tmp_path):
    instance = open_registry(tmp_path / "data" / "registry.db", busy_timeout_s=0.2)
    yield instance
    instance.database.close()


def version_rows(registry) -> list[tuple]:
    with registry.database.read() as db:
        return db.execute(
            "select v.id, v.label, v.checksum, count(f.id), sum(f.size) from versions v "
            "left join files f on f.version_id = v.id group by v.id order by v.id"
        ).fetchall()


def test_a_database_locked_by_another_process_is_reported_and_nothing_is_lost(registry, tiny_model_dir, tmp_path):
    registry.import_model(tiny_model_dir, name="tiny")
    before = version_rows(registry)
    second = copy_model(tiny_model_dir, tmp_path / "second")
    (second / "extra.txt").write_text("new")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(registry.database.path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DatabaseLocked, match="registry.db is locked by another program.*Nothing was changed"):
            registry.import_model(second, name="tiny")
        assert registry.versions()[0].ref == "tiny:v1"  # reading still works while another process writes
    finally:
        holder.communicate("", timeout=30)
    assert version_rows(registry) == before
    assert registry.import_model(second, name="tiny").ref == "tiny:v2"


def test_a_full_disk_rolls_the_import_back_and_keeps_what_was_registered(registry, tiny_model_dir, tmp_path):
    registry.import_model(tiny_model_dir, name="tiny")
    before = version_rows(registry)
    second = copy_model(tiny_model_dir, tmp_path / "second")
    for index in range(300):  # enough file rows to need new database pages
        (second / f"shard-{index:03d}.txt").write_text(f"part {index}")
    with registry.database.read() as db:
        pages = db.execute("pragma page_count").fetchone()[0]
        db.execute(f"pragma max_page_count = {pages}")  # the disk is full: not one more page
    with pytest.raises(DiskFull, match="is full. Nothing was changed and everything registered before is intact"):
        registry.import_model(second, name="tiny")
    assert version_rows(registry) == before
    assert registry.database.integrity_check() == "ok"
    with registry.database.read() as db:
        db.execute("pragma max_page_count = 1073741823")
    assert registry.import_model(second, name="tiny").file_count == before[0][3] + 300


def test_a_database_from_a_newer_app_stops_the_start_with_a_clear_message(tmp_path):
    data = tmp_path / "data"
    open_database(data / "registry.db").close()
    connection = sqlite3.connect(data / "registry.db")
    connection.execute("insert into _migrations (name, applied_at) values ('m042_next_year', 'later')")
    connection.commit()
    connection.close()
    with pytest.raises(DatabaseTooNew, match="written by a newer version of LLM Console"):
        ConsoleCore(data_dir=data)


def test_the_cli_says_the_database_is_too_new_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    from console.cli.main import main

    data = tmp_path / "data"
    open_database(data / "registry.db").close()
    connection = sqlite3.connect(data / "registry.db")
    connection.execute("insert into _migrations (name, applied_at) values ('m042_next_year', 'later')")
    connection.commit()
    connection.close()
    monkeypatch.setenv("LLM_CONSOLE_DATA_DIR", str(data))
    assert main(["models", "list"]) == 1
    assert "error: This database was written by a newer version of LLM Console" in capsys.readouterr().err


def test_a_manifest_that_cannot_be_written_is_refused_cleanly(registry, tiny_model_dir, tmp_path):
    version = registry.import_model(tiny_model_dir, name="tiny")
    with pytest.raises(ManifestError, match="Cannot write the manifest to .*no-such-folder"):
        write_manifest(registry, version.id, tmp_path / "no-such-folder" / "tiny.json")
