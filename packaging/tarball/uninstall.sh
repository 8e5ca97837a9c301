#!/usr/bin/env bash
# Remove the per-user install of LLM Console made by install.sh. Your data folder (models registered, chats,
# users, the audit log) is kept unless you pass --purge.
set -euo pipefail

purge=no
case "${1:-}" in
    "") ;;
    --purge) purge=yes ;;
    *) echo "usage: uninstall.sh [--purge]   (--purge also deletes your LLM Console data folder)" >&2; exit 2 ;;
esac

DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
TARGET="$HOME/.local/opt/llm-console"
LINK="$HOME/.local/bin/llm-console"
DATA_DIR="${LLM_CONSOLE_DATA_DIR:-$DATA_HOME/llm-console}"

rm -rf "$TARGET"
if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$TARGET/llm-console" ]; then
    rm -f "$LINK"
fi
rm -f "$DATA_HOME/applications/llm-console.desktop" "$DATA_HOME/icons/hicolor/scalable/apps/llm-console.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA_HOME/applications" 2>/dev/null || true
echo "Removed LLM Console from $TARGET and the application menu."

if [ "$purge" = yes ]; then
    rm -rf "$DATA_DIR"
    echo "Deleted the data folder $DATA_DIR."
elif [ -d "$DATA_DIR" ]; then
    echo "Kept your data in $DATA_DIR (uninstall.sh --purge deletes it)."
fi
