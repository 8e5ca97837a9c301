"""Numbered schema migrations, applied once each at start-up and recorded in the `_migrations` table.

Each migration is a small function over sqlite-utils, run in its own transaction together with its record, so
a crash leaves the schema either before or after it. Never edit a migration once released: add a new one.
A database that records a migration this list does not know was written by a newer version of the app.
"""

from __future__ import annotations

from typing import Callable

from sqlite_utils import Database

from console.errors import DatabaseTooNew
from console.storage.timestamps import now_iso

MIGRATIONS_TABLE = "_migrations"
Migration = Callable[[Database], None]
MIGRATIONS: list[Migration] = []


def migration(function: Migration) -> Migration:
    MIGRATIONS.append(function)
    return function


def applied_migrations(db: Database) -> list[str]:
    if not db[MIGRATIONS_TABLE].exists():
        return []
    return [row["name"] for row in db.query(f"select name from {MIGRATIONS_TABLE} order by id")]


def migrate(db: Database, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied. Refuses a newer database."""
    migrations = MIGRATIONS if migrations is None else migrations
    recorded = applied_migrations(db)
    known = {function.__name__ for function in MIGRATIONS}
    unknown = [name for name in recorded if name not in known]
    if unknown:
        raise DatabaseTooNew(
            "This database was written by a newer version of LLM Console: it has schema changes this version "
            f"does not know ({', '.join(unknown)}). Nothing was changed. Upgrade LLM Console, or set "
            "LLM_CONSOLE_DATA_DIR to another folder."
        )
    done: list[str] = []
    for function in migrations:
        if function.__name__ in recorded:
            continue
        connection = db.conn
        connection.execute("BEGIN IMMEDIATE")
        try:
            if not db[MIGRATIONS_TABLE].exists():
                db[MIGRATIONS_TABLE].create({"id": int, "name": str, "applied_at": str}, pk="id", not_null={"name"})
                db[MIGRATIONS_TABLE].create_index(["name"], unique=True)
            if function.__name__ not in applied_migrations(db):  # another process may have just applied it
                function(db)
                db[MIGRATIONS_TABLE].insert({"name": function.__name__, "applied_at": now_iso()})
                done.append(function.__name__)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return done


@migration
def m001_models_versions_files(db: Database) -> None:
    db["models"].create(
        {"id": int, "name": str, "created_at": str},
        pk="id",
        not_null={"name", "created_at"},
    )
    db["models"].create_index(["name"], unique=True)
    db["versions"].create(
        {
            "id": int,
            "model_id": int,
            "label": str,
            "format": str,  # "hf" or "gguf"
            "architecture": str,
            "parameters": int,
            "precision": str,  # precision or quantization: fp32, bf16, Q4_1, gptq 4-bit...
            "source_path": str,  # the folder (hf) or the file (gguf)
            "checksum": str,  # SHA-256 over the sorted (path, size, SHA-256) lines: one value for the version
            "file_count": int,
            "total_bytes": int,
            "registered_by": str,
            "registered_at": str,
            "notes": str,
            "retired_at": str,
        },
        pk="id",
        not_null={"model_id", "label", "format", "source_path", "checksum", "file_count", "total_bytes",
                  "registered_by", "registered_at"},
        defaults={"notes": ""},
        foreign_keys=[("model_id", "models", "id")],
    )
    db["versions"].create_index(["model_id", "label"], unique=True)
    db["versions"].create_index(["checksum"])
    db["files"].create(
        {"id": int, "version_id": int, "path": str, "size": int, "sha256": str, "mtime_ns": int},
        pk="id",
        not_null={"version_id", "path", "size", "sha256", "mtime_ns"},
        foreign_keys=[("version_id", "versions", "id")],
    )
    db["files"].create_index(["version_id", "path"], unique=True)
    db["settings"].create({"key": str, "value": str}, pk="key")


@migration
def m002_verification(db: Database) -> None:
    versions = db["versions"]
    versions.add_column("verify_state", str, not_null_default="verified")  # verified | tampered
    versions.add_column("last_checked_at", str)
    versions.add_column("last_check_kind", str)  # quick (sizes and times) | full (SHA-256)
    versions.add_column("last_full_check_at", str)
    versions.add_column("check_detail", str)
    db["verifications"].create(
        {"id": int, "version_id": int, "checked_at": str, "kind": str, "ok": int, "detail": str, "checked_by": str},
        pk="id",
        not_null={"version_id", "checked_at", "kind", "ok"},
        foreign_keys=[("version_id", "versions", "id")],
    )
    db["verifications"].create_index(["version_id", "checked_at"])
    db.execute("update versions set last_checked_at = registered_at, last_check_kind = 'full', "
               "last_full_check_at = registered_at")


@migration
def m003_load_events(db: Database) -> None:
    db["load_events"].create(
        {
            "id": int,
            "version_id": int,
            "loaded_at": str,
            "loaded_by": str,
            "precision": str,
            "device": str,
            "outcome": str,  # loaded | refused | failed
            "detail": str,
            "load_seconds": float,
        },
        pk="id",
        not_null={"version_id", "loaded_at", "outcome"},
        foreign_keys=[("version_id", "versions", "id")],
    )
    db["load_events"].create_index(["version_id", "loaded_at"])


@migration
def m004_conversations(db: Database) -> None:
    db["conversations"].create(
        {"id": int, "title": str, "system_prompt": str, "model_name": str, "created_at": str, "updated_at": str},
        pk="id",
        not_null={"title", "created_at", "updated_at"},
    )
    db["messages"].create(
        {
            "id": int,
            "conversation_id": int,
            "position": int,
            "role": str,
            "content": str,
            "created_at": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "tokens_per_second": float,
            "finish_reason": str,
        },
        pk="id",
        not_null={"conversation_id", "position", "role", "content", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id")],
    )
    db["messages"].create_index(["conversation_id", "position"], unique=True)


@migration
def m005_benchmark_results(db: Database) -> None:
    """Filled by the benchmark work that follows; defined now so the schema is complete."""
    db["benchmark_results"].create(
        {
            "id": int,
            "version_id": int,
            "run_at": str,
            "run_by": str,
            "kind": str,  # e.g. throughput, latency, batch-sweep
            "precision": str,
            "device": str,
            "batch_size": int,
            "prompt_tokens": int,
            "generated_tokens": int,
            "tokens_per_second": float,
            "ttft_p50_s": float,
            "latency_p50_s": float,
            "latency_p95_s": float,
            "peak_memory_bytes": int,
            "details_json": str,
        },
        pk="id",
        not_null={"run_at", "kind"},
        foreign_keys=[("version_id", "versions", "id")],
    )
    db["benchmark_results"].create_index(["version_id", "run_at"])


@migration
def m006_users_roles_audit(db: Database) -> None:
    """Access control: users (scrypt hashes, lock-out state), custom roles, and the hash-chained audit log."""
    db["users"].create(
        {
            "id": int,
            "name": str,
            "password_hash": str,
            "role": str,
            "created_at": str,
            "created_by": str,
            "failed_attempts": int,
            "lockouts": int,
            "locked_until": float,
            "last_sign_in_at": str,
        },
        pk="id",
        not_null={"name", "password_hash", "role", "created_at"},
    )
    db["users"].create_index(["name"], unique=True)
    db["roles"].create(
        {"name": str, "description": str, "permissions": str, "created_at": str, "created_by": str},
        pk="name",
        not_null={"permissions"},
    )
    db["audit_log"].create(
        {
            "id": int,
            "seq": int,
            "at": str,
            "actor": str,
            "action": str,
            "target": str,
            "outcome": str,
            "details": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="id",
        not_null={"seq", "at", "actor", "action", "outcome", "prev_hash", "hash"},
    )
    db["audit_log"].create_index(["seq"], unique=True)
    db["audit_log"].create_index(["actor", "at"])


@migration
def m007_alert_log(db: Database) -> None:
    """Telemetry alerts, firing and resolved, kept for the admin's record."""
    db["alert_events"].create(
        {"id": int, "at": str, "rule": str, "subject": str, "state": str, "value": float, "threshold": float, "text": str},
        pk="id",
        not_null={"at", "rule", "state", "text"},
    )
    db["alert_events"].create_index(["at"])


@migration
def m008_conversation_owners(db: Database) -> None:
    """Each saved conversation belongs to the user who had it (rows from before have no owner: only those who
    may see every conversation see them), and failed sign-ins under names that are no account are counted like
    a real account's, by a fingerprint of the name, so a lock-out does not tell real accounts apart."""
    db["conversations"].add_column("owner", str)
    db["conversations"].create_index(["owner"])
    db["sign_in_failures"].create(
        {"fingerprint": str, "failed_attempts": int, "lockouts": int, "locked_until": float},
        pk="fingerprint",
    )


@migration
def m009_api_keys(db: Database) -> None:
    """The local API: keys bound to users (only a SHA-256 of each secret is kept) and their usage per day."""
    db["api_keys"].create(
        {
            "id": int,
            "name": str,  # the admin's label ("grafana", "notebook on bob's laptop")
            "user": str,  # the key acts as this user, so with this user's role
            "prefix": str,  # the secret's first characters, to recognise a key in lists and logs
            "secret_sha256": str,
            "created_at": str,
            "created_by": str,
            "expires_at": str,
            "revoked_at": str,
            "revoked_by": str,
            "last_used_at": str,
        },
        pk="id",
        not_null={"name", "user", "prefix", "secret_sha256", "created_at", "created_by"},
    )
    db["api_keys"].create_index(["secret_sha256"], unique=True)
    db["api_key_usage"].create(
        {"key_id": int, "day": str, "requests": int, "prompt_tokens": int, "completion_tokens": int, "errors": int},
        pk=("key_id", "day"),
        not_null={"key_id", "day", "requests", "prompt_tokens", "completion_tokens", "errors"},
        foreign_keys=[("key_id", "api_keys", "id")],
    )


@migration
def m010_converted_copies(db: Database) -> None:
    """The SHA-256 of each file of a GGUF version's converted copy in the cache, recorded at conversion: a
    checksum file beside the copy could be edited together with it, the registry's database cannot."""
    db["converted_files"].create(
        {"version_id": int, "path": str, "sha256": str, "recorded_at": str},
        pk=("version_id", "path"),
        not_null={"version_id", "path", "sha256", "recorded_at"},
        foreign_keys=[("version_id", "versions", "id")],
    )


@migration
def m011_tuning_lab(db: Database) -> None:
    """The tuning lab: sweeps (plan, machine, state), their points and repetitions in `benchmark_results`,
    the recommendation saved per model version and device, and each load's memory beside its estimate."""
    db["lab_sweeps"].create(
        {
            "id": int,
            "version_id": int,  # null for a model path that is not registered
            "model_name": str,
            "model_path": str,
            "model_key": str,  # "version:ID" or "path:PATH": what recommendations are saved against
            "device": str,
            "machine_json": str,  # CPU model and cores, GPU and driver, torch and transformers versions
            "plan_json": str,
            "state": str,  # running | cancelled | failed | done
            "error": str,
            "started_at": str,
            "finished_at": str,
            "run_by": str,
        },
        pk="id",
        not_null={"model_name", "model_key", "device", "machine_json", "plan_json", "state", "started_at"},
        foreign_keys=[("version_id", "versions", "id")],
    )
    results = db["benchmark_results"]
    results.add_column("sweep_id", int)
    results.add_column("point_key", str)  # precision/batch/users/max wait
    results.add_column("concurrency", int)
    results.add_column("max_wait_ms", float)
    results.add_column("repetition", int)  # kind lab-repetition: which one; lab-point: how many
    results.create_index(["sweep_id", "kind", "point_key"])
    db["lab_recommendations"].create(
        {"id": int, "model_key": str, "device": str, "precision": str, "max_batch_size": int, "max_wait_ms": float,
         "sweep_id": int, "saved_by": str, "saved_at": str},
        pk="id",
        not_null={"model_key", "device", "precision", "max_batch_size", "max_wait_ms", "saved_by", "saved_at"},
    )
    db["lab_recommendations"].create_index(["model_key", "device"], unique=True)
    db["load_memory"].create(
        {"id": int, "at": str, "model": str, "precision": str, "device": str, "estimate_json": str,
         "estimated_weight_bytes": int, "measured_weight_bytes": int, "measured_load_bytes": int,
         "overhead_bytes": int},
        pk="id",
        not_null={"at", "model", "precision", "device", "estimate_json"},
    )
    db["load_memory"].create_index(["device", "at"])
