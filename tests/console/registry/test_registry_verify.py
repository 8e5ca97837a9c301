"""Verify before every load: quick checks, full re-hashes (on change, on demand, on schedule), tampering refused."""

from __future__ import annotations

import datetime
import os

import pytest

from console.errors import ChecksumMismatch, UnknownModel, VersionRetired
from engine import ModelSpec
from tests.registry_helpers import copy_model, flip_byte
from tests.access_helpers import raw_database


@pytest.fixture
def registered(core, admin, tiny_model_copy):
    """A tiny model registered from a private copy that the test may damage."""
    return core.registry.import_model(admin, tiny_model_copy, name="tiny")


def test_loading_a_registered_version_checks_it_and_records_the_load(core, admin, registered):
    info = core.load_version(admin, "tiny:v1", precision="fp32", device="cpu")
    assert info.name == "tiny:v1"
    assert core.model_info == info
    version = core.registry.version(admin, registered.id)
    assert (version.verify_state, version.last_check_kind) == ("verified", "quick")
    [event] = core.registry.load_history(admin, registered.id)
    assert (event.outcome, event.precision, event.device, event.version_ref) == ("loaded", "fp32", "cpu", "tiny:v1")
    assert event.load_seconds > 0


def test_tampered_file_refuses_load_and_names_the_file(core, admin, registered, tiny_model_copy):
    expected = {f.path: f.sha256 for f in core.registry.files(admin, registered.id)}["model.safetensors"]
    flip_byte(tiny_model_copy / "model.safetensors")
    with pytest.raises(ChecksumMismatch) as caught:
        core.load_version(admin, "tiny", precision="fp32", device="cpu")
    error = caught.value
    assert error.file == "model.safetensors"
    assert error.expected == expected
    assert error.found not in (None, expected)
    message = str(error)
    assert "tiny:v1 failed verification and was not loaded" in message
    assert f"model.safetensors changed: expected SHA-256 {expected}, found {error.found}" in message
    assert core.model_info is None
    version = core.registry.version(admin, registered.id)
    assert version.verify_state == "tampered"
    assert "model.safetensors changed" in version.check_detail
    [event] = core.registry.load_history(admin, registered.id)
    assert event.outcome == "refused" and "model.safetensors" in event.detail


def test_a_refused_load_keeps_the_model_that_was_loaded(core, admin, registered, tiny_model_copy):
    info = core.load_version(admin, "tiny:v1", precision="fp32", device="cpu")
    flip_byte(tiny_model_copy / "config.json", offset=3)
    with pytest.raises(ChecksumMismatch, match="config.json changed"):
        core.load_version(admin, "tiny:v1", precision="fp32", device="cpu")
    assert core.model_info == info


def test_a_missing_file_refuses_load(core, admin, registered, tiny_model_copy):
    (tiny_model_copy / "tokenizer.json").unlink()
    with pytest.raises(ChecksumMismatch, match="tokenizer.json is missing"):
        core.load_version(admin, "tiny:v1", precision="fp32", device="cpu")


def test_an_unchanged_version_gets_a_quick_check_and_verify_now_rehashes(core, admin, registered):
    quick = core.registry.verify_version(admin, registered.id)
    assert quick.ok and quick.kind == "quick"
    full = core.registry.verify_version(admin, registered.id, force_full=True)
    assert full.ok and full.kind == "full"
    history = core.registry.verification_history(admin, registered.id)
    assert [check["kind"] for check in history] == ["full", "quick"]


def test_a_changed_modification_time_forces_a_full_rehash(core, admin, registered, tiny_model_copy):
    config = tiny_model_copy / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched, same bytes
    report = core.registry.verify_version(admin, registered.id)
    assert report.ok and report.kind == "full"
    assert "config.json changed size or modification time" in report.rehashed_because
    assert core.registry.verify_version(admin, registered.id).kind == "quick"  # the new time is now on record


def test_same_size_and_time_hides_a_change_from_the_quick_check_but_not_from_verify_now(core, admin, registered, tiny_model_copy):
    weights = tiny_model_copy / "model.safetensors"
    stat = weights.stat()
    flip_byte(weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a careful attacker restores the time
    assert core.registry.verify_version(admin, registered.id).ok
    report = core.registry.verify_version(admin, registered.id, force_full=True)
    assert not report.ok
    assert report.problems[0].path == "model.safetensors"
    assert core.registry.version(admin, registered.id).verify_state == "tampered"


def test_a_tampered_version_is_rehashed_until_its_files_are_restored(core, admin, registered, tiny_model_copy):
    weights = tiny_model_copy / "model.safetensors"
    original = weights.read_bytes()
    flip_byte(weights)
    assert not core.registry.verify_version(admin, registered.id).ok
    weights.write_bytes(original)
    report = core.registry.verify_version(admin, registered.id)
    assert report.ok and report.kind == "full"
    assert core.registry.version(admin, registered.id).verify_state == "verified"


def test_the_schedule_rehashes_versions_whose_last_full_check_is_too_old(core, admin, registered):
    core.registry.set_verify_interval(admin, 6)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert core.registry.due_for_full_check(admin, now) == []
    later = now + datetime.timedelta(hours=7)
    assert [v.ref for v in core.registry.due_for_full_check(admin, later)] == ["tiny:v1"]
    core.registry.set_verify_interval(admin, 0)
    assert core.registry.due_for_full_check(admin, later) == []


def test_a_load_after_the_interval_rehashes_first(core, admin, registered):
    core.registry.set_verify_interval(admin, 1)
    database = raw_database(core.data_dir)
    with database.write() as db:
        db.execute("update versions set last_full_check_at = '2000-01-01T00:00:00+00:00' where id = ?", [registered.id])
    database.close()
    messages = []
    core.load_version(admin, "tiny:v1", precision="fp32", device="cpu", progress=lambda _f, m: messages.append(m))
    assert core.registry.version(admin, registered.id).last_check_kind == "full"
    assert any(m.startswith("Verifying") and "/s" in m for m in messages)


def test_a_retired_version_cannot_be_loaded_or_made_default(core, admin, registered):
    core.registry.set_default(admin, registered.id)
    retired = core.registry.retire(admin, registered.id)
    assert retired.retired and core.registry.default_version(admin) is None
    with pytest.raises(VersionRetired, match="tiny:v1 was retired"):
        core.load_version(admin, "tiny:v1")
    with pytest.raises(VersionRetired, match="cannot be the default"):
        core.registry.set_default(admin, registered.id)
    assert core.registry.load_history(admin, registered.id)[0].outcome == "refused"


def test_refs_resolve_by_name_and_version_and_say_what_exists(core, admin, registered, tiny_model_copy, tmp_path):
    changed = copy_model(tiny_model_copy, tmp_path / "v2")
    (changed / "README.md").write_text("second version")
    second = core.registry.import_model(admin, changed, name="tiny")
    assert core.registry.resolve(admin, "tiny").id == second.id
    assert core.registry.resolve(admin, "tiny:v1").id == registered.id
    assert core.registry.resolve(admin, registered.id).ref == "tiny:v1"
    with pytest.raises(UnknownModel, match="No model named 'huge' is registered. Registered models: tiny."):
        core.registry.resolve(admin, "huge")
    with pytest.raises(UnknownModel, match="Model 'tiny' has no version 'v9'. Its versions: v1, v2."):
        core.registry.resolve(admin, "tiny:v9")


def test_the_default_load_target_is_the_registry_default(core, admin, registered):
    assert isinstance(core.default_load_target(), ModelSpec)  # no default version yet: the embedded file
    core.registry.set_default(admin, registered.id)
    target = core.default_load_target("fp32", "cpu")
    info = core.load(admin, target)
    assert info.name == "tiny:v1"
