#!/bin/sh
# Run inside the clean-system test's root, as the user: start Xvfb, run the menu entry's command as a desktop
# would, time it until a window whose title contains TITLE is on screen, and copy the screen to
# /tmp/first-window.xwd (packaging/xwd_to_png.py makes it a PNG).   sh first-window.sh DESKTOP_FILE TITLE
set -eu
desktop_file="$1" title="$2"
display=:7
fb="$(mktemp -d)"
Xvfb "$display" -screen 0 1280x800x24 -fbdir "$fb" -nolisten tcp >"$fb/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill "$xvfb" 2>/dev/null || true' EXIT
tries=0
until xwininfo -display "$display" -root >/dev/null 2>&1; do
    tries=$((tries + 1)); [ "$tries" -lt 200 ] || { echo "Xvfb did not start"; cat "$fb/xvfb.log"; exit 1; }
    sleep 0.05
done

command_line="$(sed -n 's/^Exec=//p' "$desktop_file" | head -n 1)"
echo "menu entry's command: $command_line"
started="$(date +%s.%N)"
DISPLAY="$display" sh -c "exec $command_line" >"$fb/app.log" 2>&1 &
app=$!
window=""
while [ -z "$window" ]; do
    if ! kill -0 "$app" 2>/dev/null; then echo "the app exited before showing a window:"; cat "$fb/app.log"; exit 1; fi
    if [ "$(awk "BEGIN { print ($(date +%s.%N) - $started > 60) }")" = 1 ]; then
        echo "no window within 60 s"; cat "$fb/app.log"; exit 1
    fi
    for id in $(xwininfo -display "$display" -root -tree 2>/dev/null | grep -F "$title" | awk '{ print $1 }'); do
        if xwininfo -display "$display" -id "$id" | grep -q "Map State: IsViewable"; then window="$id"; fi
    done
    [ -n "$window" ] || sleep 0.05
done
finished="$(date +%s.%N)"
echo "window after $(awk "BEGIN { printf \"%.1f\", $finished - $started }") s"
sleep 2  # the window is mapped; give it time to paint before the screenshot
cp "$fb/Xvfb_screen0" /tmp/first-window.xwd
kill "$app"
wait "$app" 2>/dev/null || true
echo "app log:"; cat "$fb/app.log"
