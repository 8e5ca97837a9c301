"""Where LLM Console keeps its data: the platform's user data directory, or LLM_CONSOLE_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_VARIABLE = "LLM_CONSOLE_DATA_DIR"
DATABASE_FILE = "registry.db"  # the model registry, load history and saved conversations


def data_dir() -> Path:
    configured = os.environ.get(DATA_DIR_VARIABLE)
    path = Path(configured).expanduser() if configured else platformdirs.user_data_path("llm-console", appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Converted models (GGUF dequantized to safetensors) live here; safe to delete."""
    path = data_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path(data_directory: Path | None = None) -> Path:
    """The app's SQLite database: `registry.db` in the data directory."""
    return (data_directory or data_dir()) / DATABASE_FILE
