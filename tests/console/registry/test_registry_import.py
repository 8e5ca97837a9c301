"""Importing models into the registry: what is recorded, streaming hashes, cancellation, and refused input."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import tracemalloc

import pytest

from console.registry.checksums import hash_files, sha256_file, version_checksum
from console.errors import DuplicateImport, ImportCancelled, InvalidModel, RegistryError, VersionExists
from tests.registry_helpers import copy_model, flip_byte, make_gguf, make_hf_folder, open_registry


@pytest.fixture
def registry(tmp_path):
    instance = open_registry(tmp_path / "data" / "registry.db")
    yield instance
    instance.database.close()


def table_counts(registry) -> tuple[int, int, int]:
    with registry.database.read() as db:
        return tuple(db.execute(f"select count(*) from {table}").fetchone()[0] for table in ("models", "versions", "files"))


def test_importing_a_hugging_face_folder_records_every_file_and_its_sha256(registry, tiny_model_dir):
    version = registry.import_model(tiny_model_dir, name="tiny", version="2024-06", notes="from the lab", registered_by="alice")
    assert (version.ref, version.format, version.architecture, version.precision) == ("tiny:2024-06", "hf", "llama", "fp32")
    assert version.parameters > 10_000
    assert (version.registered_by, version.notes, version.verify_state) == ("alice", "from the lab", "verified")
    assert version.source_path == str(tiny_model_dir.resolve())
    files = registry.files(version.id)
    on_disk = sorted(p.name for p in tiny_model_dir.iterdir() if p.is_file())
    assert [f.path for f in files] == on_disk
    for record in files:
        content = (tiny_model_dir / record.path).read_bytes()
        assert record.size == len(content)
        assert record.sha256 == hashlib.sha256(content).hexdigest()
    assert version.file_count == len(files) and version.total_bytes == sum(f.size for f in files)
    assert version.checksum == version_checksum((f.path, f.size, f.sha256) for f in files)


def test_importing_a_gguf_file_records_its_architecture_parameters_and_quantization(registry, tmp_path):
    path = make_gguf(tmp_path / "small.gguf")
    version = registry.import_model(path)
    assert (version.ref, version.format, version.architecture, version.parameters) == ("small:v1", "gguf", "llama", 64)
    assert version.precision in ("F32", "F16")
    assert [f.path for f in registry.files(version.id)] == ["small.gguf"]
    assert registry.files(version.id)[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_changed_files_register_as_the_next_version_of_the_same_model(registry, tiny_model_dir, tmp_path):
    first = registry.import_model(tiny_model_dir, name="tiny")
    changed = copy_model(tiny_model_dir, tmp_path / "tiny-retrained")
    flip_byte(changed / "model.safetensors", offset=changed.joinpath("model.safetensors").stat().st_size - 1)
    second = registry.import_model(changed, name="tiny")
    assert (first.label, second.label) == ("v1", "v2")
    assert first.model_id == second.model_id
    assert [v.ref for v in registry.versions()] == ["tiny:v1", "tiny:v2"]


def test_importing_the_same_files_twice_is_refused_by_hash(registry, tiny_model_dir, tmp_path):
    registry.import_model(tiny_model_dir, name="tiny")
    elsewhere = copy_model(tiny_model_dir, tmp_path / "same-files-elsewhere")
    before = table_counts(registry)
    with pytest.raises(DuplicateImport, match="already registered as tiny:v1.*same SHA-256 for every file") as caught:
        registry.import_model(elsewhere, name="another-name")
    assert caught.value.existing_ref == "tiny:v1"
    assert table_counts(registry) == before


def test_an_existing_version_label_is_refused_before_hashing(registry, tiny_model_dir, tmp_path):
    registry.import_model(tiny_model_dir, name="tiny", version="v1")
    changed = copy_model(tiny_model_dir, tmp_path / "changed")
    (changed / "notes.txt").write_text("a new file")
    reports = []
    with pytest.raises(VersionExists, match="tiny already has a version 'v1'"):
        registry.import_model(changed, name="tiny", version="v1", progress=reports.append)
    assert reports == []


def test_import_reports_progress_with_bytes_per_second(registry, tiny_model_dir):
    reports = []
    version = registry.import_model(tiny_model_dir, progress=reports.append)
    assert reports[0].done_bytes == 0
    assert reports[-1].done_bytes == reports[-1].total_bytes == version.total_bytes
    assert reports[-1].bytes_per_second > 0
    assert [r.done_bytes for r in reports] == sorted(r.done_bytes for r in reports)


def test_cancelling_an_import_registers_nothing(registry, tmp_path):
    big = make_hf_folder(tmp_path / "big", weight_bytes=256 * 1024 * 1024)  # sparse: instant to create
    cancel = threading.Event()
    reports = []

    def progress(step):
        reports.append(step)
        cancel.set()  # the user presses Cancel as soon as hashing starts

    with pytest.raises(ImportCancelled, match="nothing was registered"):
        registry.import_model(big, progress=progress, cancel=cancel)
    assert reports[-1].done_bytes < reports[-1].total_bytes
    assert table_counts(registry) == (0, 0, 0)


def test_hashing_streams_a_large_file_in_bounded_memory(tmp_path):
    path = tmp_path / "large.bin"
    with path.open("wb") as handle:
        handle.truncate(256 * 1024 * 1024)
    tracemalloc.start()
    try:
        digest = sha256_file(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024
    zeros = hashlib.sha256()
    block = bytes(1024 * 1024)
    for _ in range(256):
        zeros.update(block)
    assert digest == zeros.hexdigest()


def test_hash_files_names_an_unreadable_file(tmp_path):
    (tmp_path / "present.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError):
        hash_files(tmp_path, ["present.bin", "absent.bin"])


def test_a_missing_path_is_refused_with_its_name(registry, tmp_path):
    with pytest.raises(InvalidModel, match="Model not found: .*nowhere. Nothing was registered."):
        registry.import_model(tmp_path / "nowhere")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_folder_is_refused(registry, tiny_model_copy):
    tiny_model_copy.chmod(0)
    try:
        with pytest.raises(InvalidModel, match="permission denied"):
            registry.import_model(tiny_model_copy)
    finally:
        tiny_model_copy.chmod(0o755)
    assert table_counts(registry) == (0, 0, 0)


def test_a_folder_without_weights_is_refused(registry, tiny_model_copy):
    for weights in tiny_model_copy.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(InvalidModel, match="has no weights"):
        registry.import_model(tiny_model_copy)
    assert table_counts(registry) == (0, 0, 0)


def test_a_truncated_safetensors_file_is_refused(registry, tiny_model_copy):
    weights = tiny_model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(InvalidModel, match="model.safetensors is truncated"):
        registry.import_model(tiny_model_copy)
    assert table_counts(registry) == (0, 0, 0)


def test_an_unknown_hugging_face_architecture_is_refused(registry, tiny_model_copy):
    config_path = tiny_model_copy / "config.json"
    config = json.loads(config_path.read_text())
    config["model_type"] = "no-such-architecture"
    config_path.write_text(json.dumps(config))
    with pytest.raises(InvalidModel, match="Unsupported architecture 'no-such-architecture'"):
        registry.import_model(tiny_model_copy)


def test_a_gguf_with_an_unknown_architecture_is_refused(registry, tmp_path):
    path = make_gguf(tmp_path / "strange.gguf", architecture="no-such-arch")
    with pytest.raises(InvalidModel, match="GGUF architecture 'no-such-arch' is not supported. Supported: .*llama"):
        registry.import_model(path)
    assert table_counts(registry) == (0, 0, 0)


def test_a_truncated_gguf_is_refused(registry, tmp_path):
    path = make_gguf(tmp_path / "cut.gguf")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InvalidModel, match="cut.gguf is a damaged GGUF file"):
        registry.import_model(path)


def test_a_name_with_a_colon_is_refused(registry, tiny_model_dir):
    with pytest.raises(RegistryError, match="contains ':'"):
        registry.import_model(tiny_model_dir, name="bad:name")


def test_the_version_checksum_does_not_depend_on_file_order():
    files = [("b.json", 2, "bb"), ("a.safetensors", 1, "aa")]
    assert version_checksum(files) == version_checksum(list(reversed(files)))
    assert version_checksum(files) != version_checksum([("b.json", 2, "bb"), ("a.safetensors", 1, "ab")])
