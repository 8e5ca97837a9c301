"""A process registering versions is killed with SIGKILL at random moments, many times: the database stays
sound, every version it confirmed survives, and no version is ever half-written."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path

from tests.registry_helpers import make_hf_folder, open_registry

ROUNDS = 20
FILES_PER_VERSION = 40  # enough rows that a kill can land inside the transaction


def register_forever(database_path: Path, work_dir: Path, messages) -> None:
    """The victim (a forked child): registers small, all-different versions until it is killed."""
    registry = open_registry(database_path)
    number = 0
    while True:
        number += 1
        folder = make_hf_folder(work_dir / f"{os.getpid()}-{number}", weight_bytes=os.urandom(256))
        for index in range(FILES_PER_VERSION):
            (folder / f"part-{index:02d}.txt").write_text(f"{folder.name} part {index}")
        version = registry.import_model(folder, name="victim", progress=lambda _step: messages.send(("hash", None)))
        messages.send(("committed", version.id))


def receive(receiver, confirmed: set[int], timeout: float) -> bool:
    """Take one report from the child; False when none came (or the child is gone)."""
    try:
        if not receiver.poll(timeout):
            return False
        kind, version_id = receiver.recv()
    except EOFError:
        return False
    if kind == "committed":
        confirmed.add(version_id)
    return True


def test_sigkill_while_registering_never_leaves_a_half_registered_version(tmp_path):
    import engine.weights.inspection  # noqa: F401 - imported once here, so forked children start at once
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # noqa: F401

    database_path = tmp_path / "data" / "registry.db"
    open_registry(database_path).database.close()
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    fork = multiprocessing.get_context("fork")
    confirmed: set[int] = set()
    for _ in range(ROUNDS):
        receiver, sender = fork.Pipe(duplex=False)
        child = fork.Process(target=register_forever, args=(database_path, tmp_path / "models", sender), daemon=True)
        child.start()
        sender.close()
        # The kill moment: after a random number of the child's reports (hashing started or ended, version
        # committed), so it lands while hashing, between files, inside or just after the transaction.
        for _ in range(chance.randint(1, 10)):
            if not receive(receiver, confirmed, timeout=30):
                break
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode == -signal.SIGKILL, f"the writer died on its own (seed {seed})"
        while receive(receiver, confirmed, timeout=0):  # reports sent just before the kill
            pass
        receiver.close()

    registry = open_registry(database_path)
    try:
        assert registry.database.integrity_check() == "ok", f"seed {seed}"
        with registry.database.read() as db:
            assert db.execute("pragma foreign_key_check").fetchall() == []
            rows = db.execute(
                "select v.id, v.file_count, v.total_bytes, count(f.id), coalesce(sum(f.size), 0) "
                "from versions v left join files f on f.version_id = v.id group by v.id"
            ).fetchall()
        versions = {row[0] for row in rows}
        assert confirmed <= versions, f"committed versions lost (seed {seed})"
        assert len(versions) >= 1, f"no version was ever committed (seed {seed})"
        for version_id, file_count, total_bytes, files, size in rows:
            assert files == file_count == FILES_PER_VERSION + 3, f"seed {seed}"  # + config, tokenizer, weights
            assert size == total_bytes, f"seed {seed}"
            assert registry.verify_version(version_id, force_full=True).ok, f"seed {seed}"
    finally:
        registry.database.close()
