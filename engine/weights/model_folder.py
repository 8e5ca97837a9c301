"""What a Hugging Face model folder holds: every file a load may read, found without following links out of it.

The registry records these files at import and refuses a load when one was added, so the walk must see what
transformers sees (tokenizer files, chat_template.jinja, generation_config.json, sub-folders) and must never
wander off through a symbolic link (a link to `/` would walk the whole file system). `inspection.py` and the
loader use it; the console's registry uses it to verify a version's folder.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import ModelLoadError

# One of these sets must be present for AutoTokenizer to build a tokenizer without downloading anything.
TOKENIZER_FILE_SETS = (
    ("tokenizer.json",),
    ("tokenizer.model",),
    ("spiece.model",),
    ("sentencepiece.bpe.model",),
    ("vocab.json", "merges.txt"),
    ("vocab.txt",),
)


class UnsafeModelFile(ModelLoadError):
    """A link that leaves the model folder, loops or points nowhere, or an entry that is not a regular file."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class FolderScan:
    files: tuple[str, ...]  # regular files, relative, "/"-separated, sorted
    refused: tuple[UnsafeModelFile, ...]  # entries that must not be read, in walk order


def _hugging_face_blobs(root: Path) -> Path | None:
    """In the Hugging Face cache, snapshots/<revision>/ holds links to ../../blobs/: those links stay allowed."""
    if root.parent.name == "snapshots" and (root.parent.parent / "blobs").is_dir():
        return (root.parent.parent / "blobs").resolve()
    return None


def scan_model_folder(folder: Path) -> FolderScan:
    """Every regular file below `folder` except hidden ones (.git, .cache), which transformers never reads.

    A symbolic link is followed only when it stays inside the folder (or, in the Hugging Face cache, points
    into the repository's blobs/); a folder reached twice through links is walked once, so links cannot loop.
    """
    root = Path(os.path.realpath(folder))
    blobs = _hugging_face_blobs(root)
    found: list[str] = []
    refused: list[UnsafeModelFile] = []
    visited: set[str] = set()

    def walk(directory: Path, relative: PurePosixPath) -> None:
        visited.add(os.path.realpath(directory))
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as error:
            refused.append(UnsafeModelFile(f"{relative.as_posix() or folder.name} cannot be read: {error.strerror}.",
                                           relative.as_posix()))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = (relative / entry.name).as_posix()
            target = Path(entry.path)
            if entry.is_symlink():
                try:
                    target = Path(entry.path).resolve(strict=True)
                except (OSError, RuntimeError):  # RuntimeError: Python 3.11's word for a link loop
                    refused.append(UnsafeModelFile(
                        f"{name} is a symbolic link that loops or points to nothing. Remove it, or replace it "
                        "with the file it should be.", name))
                    continue
                inside = target == root or target.is_relative_to(root)
                if not inside and not (blobs is not None and target.parent == blobs):
                    refused.append(UnsafeModelFile(
                        f"{name} is a symbolic link to {target}, outside the model folder. Copy the file into "
                        "the folder instead of linking to it.", name))
                    continue
            try:
                mode = target.stat().st_mode
            except OSError as error:
                refused.append(UnsafeModelFile(f"{name} cannot be read: {error.strerror}.", name))
                continue
            if stat.S_ISDIR(mode):
                if os.path.realpath(target) not in visited:  # a link back to a folder already walked
                    walk(target, relative / entry.name)
            elif stat.S_ISREG(mode):
                found.append(name)
            else:  # a FIFO or a device would block or stream for ever when hashed
                refused.append(UnsafeModelFile(f"{name} is not a regular file (a pipe, socket or device). Remove it.",
                                               name))

    walk(root, PurePosixPath())
    return FolderScan(tuple(sorted(found)), tuple(refused))


def model_files(folder: Path) -> tuple[str, ...]:
    """The folder's files (see `scan_model_folder`); raises UnsafeModelFile for the first entry refused."""
    scan = scan_model_folder(folder)
    if scan.refused:
        raise scan.refused[0]
    return scan.files


def check_tokenizer_files(folder: Path) -> None:
    """Refuse a folder from which no tokenizer can be built (the model could not read a prompt)."""
    if any(all((folder / name).is_file() for name in names) for names in TOKENIZER_FILE_SETS):
        return
    raise ModelLoadError(
        f"{folder} has no tokenizer files (tokenizer.json, tokenizer.model, or vocab.json with merges.txt), so "
        "the model could not read a prompt. Copy the tokenizer files from where the model came from."
    )


def resolve_model_path(path: Path) -> Path:
    """The path with links resolved; refuses a path that does not exist or whose links loop."""
    try:
        return Path(path).expanduser().resolve(strict=True)
    except FileNotFoundError as error:
        raise ModelLoadError(f"Model not found: {path}") from error
    except RuntimeError as error:
        raise ModelLoadError(f"{path} is a symbolic link that loops back on itself. Give the real path.") from error
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ModelLoadError(f"{path} is a symbolic link that loops back on itself. Give the real path.") from error
        raise ModelLoadError(f"Cannot read {path}: {error.strerror}.") from error
