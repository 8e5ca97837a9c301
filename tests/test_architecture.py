"""The layers (engine ← console ← ui) are contracts that import-linter checks in every test run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def run_lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(config)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_source_tree_keeps_every_layer_contract():
    result = run_lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_engine_module_importing_the_console_breaks_the_contracts(tmp_path):
    """The same contracts, on a copy of the tree with one forbidden import added, fail."""
    for package in ("engine", "console", "ui"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "engine" / "leak.py").write_text("from console.core import ConsoleCore\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = run_lint_imports(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode != 0
    assert "engine imports neither the console, the UI nor Qt BROKEN" in result.stdout
    assert "engine.leak -> console.core" in result.stdout
