"""Schema migrations: a fresh database, every older schema upgraded to the newest, and a newer one refused."""

from __future__ import annotations

import sqlite3

import pytest
import sqlite_utils

from console.storage.database import open_database
from console.errors import DatabaseCorrupt, DatabaseTooNew
from console.storage.migrations import MIGRATIONS, applied_migrations, migrate


def schema(path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "select type, name, tbl_name, sql from sqlite_master where name != 'sqlite_sequence' order by type, name"
        ).fetchall()
    finally:
        connection.close()


def fresh_schema(tmp_path) -> list[tuple]:
    database = open_database(tmp_path / "fresh" / "registry.db")
    database.close()
    return schema(tmp_path / "fresh" / "registry.db")


def test_a_fresh_database_gets_every_migration_in_wal_mode(tmp_path):
    database = open_database(tmp_path / "registry.db")
    try:
        assert applied_migrations(database.db) == [m.__name__ for m in MIGRATIONS]
        assert database.db.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert database.db.execute("pragma busy_timeout").fetchone()[0] == 5000
        assert database.db.execute("pragma foreign_keys").fetchone()[0] == 1
        tables = set(database.db.table_names())
        assert {"models", "versions", "files", "load_events", "conversations", "messages", "benchmark_results"} <= tables
        assert database.integrity_check() == "ok"
    finally:
        database.close()


def test_migration_names_are_numbered_in_order():
    names = [m.__name__ for m in MIGRATIONS]
    assert names == sorted(names)
    numbers = [int(name[1:4]) for name in names]
    assert all(name[0] == "m" and name[4] == "_" for name in names)
    # Numbers are handed out to parallel branches, so one may land before the one numbered below it.
    assert numbers == sorted(set(numbers)) and numbers[0] == 1


@pytest.mark.parametrize("applied", range(1, len(MIGRATIONS)))
def test_every_older_schema_upgrades_to_the_newest_and_keeps_its_data(tmp_path, applied):
    path = tmp_path / "old" / "registry.db"
    path.parent.mkdir()
    old = sqlite_utils.Database(path)
    migrate(old, MIGRATIONS[:applied])
    old.execute("insert into models (name, created_at) values ('kept', '2025-01-01T00:00:00+00:00')")
    old.execute(
        "insert into versions (model_id, label, format, source_path, checksum, file_count, total_bytes, "
        "registered_by, registered_at) values (1, 'v1', 'hf', '/models/kept', 'abc', 1, 10, 'admin', "
        "'2025-01-01T00:00:00+00:00')"
    )
    old.execute("insert into files (version_id, path, size, sha256, mtime_ns) values (1, 'config.json', 10, 'def', 1)")
    old.close()

    database = open_database(path)
    try:
        assert applied_migrations(database.db) == [m.__name__ for m in MIGRATIONS]
        version = database.db.execute("select label, registered_by, verify_state, last_full_check_at from versions").fetchone()
        assert version[:3] == ("v1", "admin", "verified")
        if applied == 1:  # m002 counts a version registered before it as fully checked at registration
            assert version[3] == "2025-01-01T00:00:00+00:00"
        assert database.db.execute("select path, sha256 from files").fetchall() == [("config.json", "def")]
        assert database.integrity_check() == "ok"
    finally:
        database.close()
    assert schema(path) == fresh_schema(tmp_path)


def test_reopening_applies_nothing_twice(tmp_path):
    path = tmp_path / "registry.db"
    open_database(path).close()
    database = open_database(path)
    try:
        assert migrate(database.db) == []
        names = [row[0] for row in database.db.execute("select name from _migrations")]
        assert len(names) == len(set(names)) == len(MIGRATIONS)
    finally:
        database.close()


def test_a_database_from_a_newer_version_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "registry.db"
    open_database(path).close()
    connection = sqlite3.connect(path)
    connection.execute("insert into _migrations (name, applied_at) values ('m999_from_the_future', 'later')")
    connection.commit()
    connection.close()
    before = schema(path)
    with pytest.raises(DatabaseTooNew, match="This database was written by a newer version of LLM Console.*m999_from_the_future"):
        open_database(path)
    assert schema(path) == before


def test_a_failing_migration_leaves_no_trace(tmp_path):
    db = sqlite_utils.Database(tmp_path / "registry.db")

    def m900_half_done(db):
        db["half"].create({"id": int}, pk="id")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        migrate(db, [MIGRATIONS[0], m900_half_done])
    assert "half" not in db.table_names()
    assert applied_migrations(db) == [MIGRATIONS[0].__name__]
    db.close()


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "registry.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(DatabaseCorrupt, match="registry.db is not an LLM Console database or is damaged"):
        open_database(path)

