"""GGUF files are dequantized once into a safetensors folder in the cache, so that later loads are fast.

The cache key is the file's path, size and modification time: a replaced file gets a fresh conversion.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

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


def materialize(path: Path, cache_dir: Path, progress: Callable[[float | None, str], None]) -> Path:
    """Return a safetensors model folder for the GGUF file, converting it if the cache has none."""
    folder = cache_folder(path, cache_dir)
    if (folder / "config.json").exists():
        if copy_is_intact(folder):
            progress(0.3, "Using converted copy from cache (checked)")
            return folder
        progress(None, "The converted copy in the cache was changed: converting again")
        shutil.rmtree(folder, ignore_errors=True)
    check_gguf_header(path)
    architecture = gguf_architecture(path)
    check_gguf_architecture(path, architecture)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(None, f"Dequantizing {path.name} ({architecture}) — first load only")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as error:  # transformers raises many types for damaged files
        raise ModelLoadError(f"Could not read {path.name}: {error}") from error
    progress(0.6, "Writing converted copy to cache")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=folder.parent))
    try:
        _save_dequantized(model, staging)
        tokenizer.save_pretrained(staging)
        _write_checksums(staging)
        staging.chmod(0o755)
        os.replace(staging, folder)  # atomic: an interrupted conversion never looks complete
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelLoadError(f"Could not write the converted model to {folder.parent}: {error.strerror}.") from error
    return folder


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


def _write_checksums(folder: Path) -> None:
    """Record the SHA-256 of every file of a converted copy, so a changed copy is never loaded."""
    lines = [f"{_digest(file)}  {file.name}" for file in sorted(folder.iterdir()) if file.is_file()]
    (folder / CHECKSUMS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def copy_is_intact(folder: Path) -> bool:
    """True when every file of the converted copy still has the SHA-256 recorded at conversion."""
    try:
        recorded = dict(
            reversed(line.split("  ", 1)) for line in (folder / CHECKSUMS_FILE).read_text(encoding="utf-8").splitlines() if line
        )
        present = {file.name for file in folder.iterdir() if file.is_file() and file.name != CHECKSUMS_FILE}
        return present == set(recorded) and all(_digest(folder / name) == digest for name, digest in recorded.items())
    except (OSError, ValueError):
        return False
