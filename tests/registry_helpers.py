"""Building blocks for the model registry's tests: small GGUF files, big (sparse) safetensors models, damage."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

from console.storage.database import open_database
from console.registry.default_model import EMBEDDED_REGISTERED_KEY
from console.registry.registry import Registry


def open_registry(path: Path, busy_timeout_s: float = 5.0) -> Registry:
    return Registry(open_database(path, busy_timeout_s=busy_timeout_s))


def skip_embedded_registration(registry: Registry) -> None:
    """Mark the first-start registration of the embedded 98 MB model as done, for tests that do not need it."""
    registry.set_setting(EMBEDDED_REGISTERED_KEY, "skipped by the test")


def make_gguf(path: Path, architecture: str = "llama", seed: int = 0) -> Path:
    """A tiny but well-formed GGUF file (two small tensors)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    rng = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", rng.standard_normal((8, 4)).astype(np.float32))
    writer.add_tensor("output.weight", rng.standard_normal((4, 8)).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes | int]]) -> Path:
    """Write a safetensors file by hand. A tensor's data is bytes, or a length left as a sparse hole (zeros)."""
    header, offset = {}, 0
    for name, (dtype, shape, data) in tensors.items():
        length = data if isinstance(data, int) else len(data)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + length]}
        offset += length
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        for _dtype, _shape, data in tensors.values():
            if isinstance(data, int):
                handle.seek(data, os.SEEK_CUR)
            else:
                handle.write(data)
        handle.truncate()
    return path


def make_hf_folder(folder: Path, weight_bytes: bytes | int = b"\0" * 64, model_type: str = "llama") -> Path:
    """A Hugging Face-shaped folder: config.json, a tokenizer file and one safetensors file (`weight_bytes` may be
    a sparse size)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "torch_dtype": "float32"}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}}))
    length = weight_bytes if isinstance(weight_bytes, int) else len(weight_bytes)
    write_safetensors(folder / "model.safetensors", {"weight": ("F32", [length // 4], weight_bytes)})
    return folder


def copy_model(source: Path, destination: Path) -> Path:
    return Path(shutil.copytree(source, destination))


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Change one byte in place (the middle of the file by default): same size, new content."""
    offset = path.stat().st_size // 2 if offset is None else offset
    with path.open("r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([value[0] ^ 0xFF]))
