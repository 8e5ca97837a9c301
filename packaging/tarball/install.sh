#!/usr/bin/env bash
# Install LLM Console for this user (no root needed): the program in ~/.local/opt/llm-console, the command
# ~/.local/bin/llm-console, and an entry with its icon in the application menu. Then run the self-test.
# Running it again over an earlier version upgrades it; your data folder (~/.local/share/llm-console) is kept.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$(id -u)" = 0 ] && [ "${LLM_CONSOLE_INSTALL_AS_ROOT:-}" != 1 ]; then
    echo "install.sh installs LLM Console for one user: run it as that user, not as root." >&2
    echo "For every user of this computer, install the .deb package instead." >&2
    exit 1
fi
if [ ! -x "$HERE/app/llm-console" ]; then
    echo "install.sh must be run from the unpacked llm-console folder (the one that holds app/)." >&2
    exit 1
fi

DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
TARGET="$HOME/.local/opt/llm-console"
BIN_DIR="$HOME/.local/bin"
APPLICATIONS="$DATA_HOME/applications"
ICONS="$DATA_HOME/icons/hicolor/scalable/apps"
mkdir -p "$HOME/.local/opt" "$BIN_DIR" "$APPLICATIONS" "$ICONS"

echo "Installing LLM Console into $TARGET"
# Copy next to the old version, then swap: an interrupted copy never leaves a half-installed program.
NEW="$TARGET.new.$$"
rm -rf "$NEW"
cp -a "$HERE/app" "$NEW"
cp "$HERE/uninstall.sh" "$NEW/uninstall.sh"
if [ -e "$TARGET" ]; then
    mv "$TARGET" "$TARGET.old.$$"
fi
mv "$NEW" "$TARGET"
rm -rf "$TARGET.old.$$"
ln -sfn "$TARGET/llm-console" "$BIN_DIR/llm-console"

# A desktop entry's Exec quotes a path with spaces; inside the quotes \ " ` $ are escaped, and % is doubled.
quoted="$(printf '%s' "$BIN_DIR/llm-console" | sed -e 's/\\/\\\\\\\\/g' -e 's/["`$]/\\\\&/g' -e 's/%/%%/g')"
while IFS= read -r line; do
    case "$line" in Exec=llm-console*) line="Exec=\"$quoted\"${line#Exec=llm-console}" ;; esac
    printf '%s\n' "$line"
done < "$HERE/llm-console.desktop" > "$APPLICATIONS/llm-console.desktop"
cp "$HERE/llm-console.svg" "$ICONS/llm-console.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPLICATIONS" 2>/dev/null || true
echo "Added LLM Console to the application menu."

case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) echo "Note: $BIN_DIR is not on your PATH; open LLM Console from the menu, or run $BIN_DIR/llm-console." ;;
esac

echo
"$TARGET/llm-console" self-test || {
    echo
    echo "LLM Console is installed, but the self-test above found a problem; its message says what to do."
    exit 1
}
echo
echo "Done. Open LLM Console from the application menu. To remove it: $TARGET/uninstall.sh"
