"""GGUF files are dequantized once into a safetensors folder in the cache, so that later loads are fast.

The cache key is the file's path, size and modification time: a replaced file gets a fresh conversion. The
converted copy is checked before each use against checksums its caller recorded elsewhere (the registry keeps
them in its database: a checksum file beside the copy could be edited with it), or, for a caller that keeps
none, against the checksum file written at conversion. A conversion reads the GGUF file from a folder of its
own, so no file lying beside it (a tokenizer_config.json, a chat_template.jinja) slips into the copy. A killed
conversion leaves a `.converting-*` folder; the next conversion removes those whose process is gone.

A conversion parses the GGUF file once. transformers opens its own `gguf.GGUFReader` for the config, the
weights and the tokenizer, and parsing the header of a file with a 49k-token vocabulary takes about 6 s on a
2-core machine; it also rebuilds gguf's tensor-name table for every module of the model (about 9 s). While a
conversion runs, `shared_gguf_reading` hands every reader request for that file the one reader already parsed,
and the name table is built once per architecture and layer count.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

try:
    import fcntl
except ImportError:  # Windows: stale conversions are not cleaned up there
    fcntl = None

from engine.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"


def check_gguf_header(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelLoadError(f"Cannot read {path}: {error.strerror}.") from error
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path.name} is not a GGUF file (it does not start with 'GGUF'); the file may be corrupt or truncated.")


def open_gguf(path: Path):
    """A `gguf.GGUFReader` over the file: memory-mapped, so only the parts asked for are read."""
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except (KeyError, ValueError, IndexError, OSError) as error:
        raise ModelLoadError(f"{path.name} is a damaged GGUF file: {error}") from error


_SHARING_LOCK = threading.Lock()  # one conversion at a time patches the gguf module


@contextmanager
def shared_gguf_reading(path: Path):
    """Within this block, `gguf.GGUFReader(path)` returns one reader, parsed at the first request, and
    `gguf.get_tensor_name_map` is memoised. Readers of other files are made as usual. Conversions in other
    threads of this process wait for this one (they would patch the same module)."""
    import gguf

    wanted = os.path.realpath(path)
    with _SHARING_LOCK:
        make_reader, make_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
        shared = {}

        def reader(file_path, *args, **kwargs):
            if args or kwargs or os.path.realpath(file_path) != wanted:
                return make_reader(file_path, *args, **kwargs)
            if "reader" not in shared:
                shared["reader"] = make_reader(file_path)
            return shared["reader"]

        gguf.GGUFReader = reader
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(make_name_map)
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = make_reader, make_name_map


def gguf_architecture(path: Path, reader=None) -> str:
    reader = reader if reader is not None else open_gguf(path)
    try:
        field = reader.fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode()
    except (KeyError, ValueError, IndexError, OSError) as error:
        raise ModelLoadError(f"{path.name} is a damaged GGUF file: {error}") from error


def supported_gguf_architectures() -> set[str]:
    """The GGUF architectures this transformers release can dequantize."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}


def check_gguf_architecture(path: Path, architecture: str) -> None:
    architectures = supported_gguf_architectures()
    if architecture not in architectures:
        supported = ", ".join(sorted(architectures))
        raise ModelLoadError(f"{path.name}: GGUF architecture '{architecture}' is not supported. Supported: {supported}.")


def cache_folder(path: Path, cache_dir: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir / "gguf" / f"{path.stem}-{key}"


@dataclass(frozen=True)
class ConvertedCopy:
    folder: Path
    files: tuple[tuple[str, str], ...]  # (path, SHA-256) of every file of the copy, sorted: for the caller to record
    converted: bool  # True when this call converted the GGUF file (the cached copy was absent or refused)


def materialize(
    path: Path,
    cache_dir: Path,
    progress: Callable[[float | None, str], None],
    recorded: Mapping[str, str] | None = None,
) -> ConvertedCopy:
    """A safetensors model folder for the GGUF file, converting it when the cache holds no copy to trust.

    `recorded` is the SHA-256 by path that the caller recorded for this file's copy: the cached copy is used
    only when its files are exactly these. Empty: the caller has no record yet, so the copy is converted again.
    None: the caller keeps no record, and the checksum file written at conversion is used (it catches damage,
    not a deliberate edit of the copy together with that file).
    """
    folder = cache_folder(path, cache_dir)
    if folder.exists():
        found = _trusted_files(folder, recorded)
        if found is not None:
            progress(0.3, "Using converted copy from cache (checked)")
            return ConvertedCopy(folder, found, converted=False)
        if recorded is None:
            progress(None, "The converted copy in the cache was changed: converting again")
        elif recorded:
            progress(None, "The converted copy in the cache does not match the checksums the registry recorded: "
                           "converting again")
        else:
            progress(None, "The registry has no checksums for the converted copy in the cache: converting again")
        shutil.rmtree(folder, ignore_errors=True)
    check_gguf_header(path)
    with shared_gguf_reading(path):
        return _convert(path, folder, progress)


def _convert(path: Path, folder: Path, progress: Callable[[float | None, str], None]) -> ConvertedCopy:
    architecture = gguf_architecture(path)
    check_gguf_architecture(path, architecture)
    folder.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_conversions(folder.parent)
    with StagingFolder(folder.parent) as staging:
        source = staging / ".source"  # the GGUF file alone: transformers also reads tokenizer files beside it
        source.mkdir()
        (source / path.name).symlink_to(path.resolve())
        from transformers import AutoModelForCausalLM, AutoTokenizer

        progress(None, f"Dequantizing {path.name} ({architecture}) — first load only")
        try:
            model = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=path.name)
            tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=path.name)
        except Exception as error:  # transformers raises many types for damaged files
            raise ModelLoadError(f"Could not read {path.name}: {error}") from error
        progress(0.6, "Writing converted copy to cache")
        try:
            shutil.rmtree(source)
            _save_dequantized(model, staging)
            tokenizer.save_pretrained(staging)
            files = _write_checksums(staging)
            staging.chmod(0o755)
        except OSError as error:
            raise ModelLoadError(f"Could not write the converted model to {folder.parent}: {error.strerror}.") from error
        try:
            os.replace(staging, folder)  # atomic: an interrupted conversion never looks complete
        except OSError as error:
            # Another process finished the same conversion first: its copy serves if it holds the same files.
            if _trusted_files(folder, dict(files)) is None:
                raise ModelLoadError(f"Could not write the converted model to {folder}: {error.strerror}.") from error
    return ConvertedCopy(folder, files, converted=True)


class StagingFolder:
    """A staging folder `.converting-XXXX` beside the cache entries, claimed by a lock on `.converting-XXXX.lock`
    for as long as this process converts into it. The lock file exists (locked) before the folder does, so a
    folder whose lock can be taken, or that has no lock file, belongs to a process that is gone."""

    def __init__(self, parent: Path):
        self.parent = parent

    def __enter__(self) -> Path:
        descriptor, lock = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=LOCK_SUFFIX, dir=self.parent)
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        self.descriptor, self.lock = descriptor, Path(lock)
        self.staging = Path(lock.removesuffix(LOCK_SUFFIX))
        self.staging.mkdir()
        return self.staging

    def __exit__(self, *_exception) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)  # gone already after a successful conversion
        self.lock.unlink(missing_ok=True)
        os.close(self.descriptor)


STAGING_PREFIX = ".converting-"
LOCK_SUFFIX = ".lock"


def clean_stale_conversions(gguf_dir: Path) -> list[Path]:
    """Remove what killed conversions left in the cache, never the staging folder of a live conversion (in
    this process or another). Returns the folders removed."""
    if fcntl is None or not gguf_dir.is_dir():
        return []
    removed = []
    for entry in sorted(gguf_dir.glob(STAGING_PREFIX + "*")):
        if entry.name.endswith(LOCK_SUFFIX):
            staging, lock = entry.with_name(entry.name.removesuffix(LOCK_SUFFIX)), entry
        else:
            staging, lock = entry, entry.with_name(entry.name + LOCK_SUFFIX)
            if lock.exists():
                continue  # handled with its lock file
        if _owner_is_gone(lock):
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
                removed.append(staging)
            lock.unlink(missing_ok=True)
    return removed


def _owner_is_gone(lock: Path) -> bool:
    """True when no process holds the lock (or there is no lock file at all: its owner removed it and died)."""
    try:
        descriptor = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(descriptor)  # also releases the lock, if it was taken
    return True


def _save_dequantized(model, folder: Path) -> None:
    """Write the dequantized weights as plain safetensors and a config without the GGUF quantization marker.

    transformers refuses `save_pretrained` on a model it loaded from GGUF, although its weights are
    ordinary tensors by then.
    """
    from safetensors.torch import save_model

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})


CHECKSUMS_FILE = "converted.sha256"


def _digest(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(8 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_entries(folder: Path) -> list[str] | None:
    """Every entry of a converted copy, hidden ones and sub-folders included (the checksum file aside); None
    when the copy holds a symbolic link or anything but plain files and folders."""
    names = []
    for directory, subdirectories, files in os.walk(folder):
        for name in subdirectories + files:
            full = Path(directory) / name
            if full.is_symlink() or not (full.is_dir() or full.is_file()):
                return None
        names += [(Path(directory) / name).relative_to(folder).as_posix() for name in files]
    return sorted(name for name in names if name != CHECKSUMS_FILE)


def _write_checksums(folder: Path) -> tuple[tuple[str, str], ...]:
    """Hash every file of a fresh copy and write the checksum file (for callers that keep no record)."""
    files = tuple((name, _digest(folder / name)) for name in _copy_entries(folder) or [])
    (folder / CHECKSUMS_FILE).write_text("".join(f"{digest}  {name}\n" for name, digest in files), encoding="utf-8")
    return files


def _trusted_files(folder: Path, recorded: Mapping[str, str] | None) -> tuple[tuple[str, str], ...] | None:
    """The copy's (path, SHA-256) when its files are exactly those recorded (or, with no record, those of its
    own checksum file); None when they differ, one is added, missing or unreadable."""
    try:
        if recorded is None:
            lines = (folder / CHECKSUMS_FILE).read_text(encoding="utf-8").splitlines()
            recorded = dict(reversed(line.split("  ", 1)) for line in lines if line)
        names = _copy_entries(folder)
        if not recorded or names is None or names != sorted(recorded):
            return None
        found = tuple((name, _digest(folder / name)) for name in names)
    except (OSError, ValueError):
        return None
    return found if dict(found) == dict(recorded) else None


def copy_is_intact(folder: Path) -> bool:
    """True when every file of the converted copy still has the SHA-256 in its checksum file."""
    return _trusted_files(folder, None) is not None
