"""The child process of `llm-console self-test`'s Qt check: start Qt's platform plugin as the window would, print
what started, and quit. Without a display it runs offscreen and checks that the xcb plugin's libraries load."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication


def xcb_plugin_libraries() -> str:
    """Load the xcb platform plugin's shared library (no display needed): a missing system library is named."""
    for folder in QApplication.libraryPaths():
        plugin = Path(folder) / "platforms" / "libqxcb.so"
        if plugin.exists():
            try:
                ctypes.CDLL(str(plugin))
            except OSError as error:
                raise SystemExit(f"The xcb platform plugin cannot load: {error}") from error
            return "the xcb plugin's libraries load"
    raise SystemExit(f"No xcb platform plugin in {', '.join(QApplication.libraryPaths()) or 'any plugin folder'}")


def probe_platform() -> int:
    app = QApplication([sys.argv[0]])
    screen = app.primaryScreen()
    size = f", screen {screen.size().width()}x{screen.size().height()}" if screen is not None else ""
    report = f"{app.platformName()} started{size}"
    if app.platformName() == "offscreen":
        report += f"; {xcb_plugin_libraries()}"
    print(report, flush=True)
    return 0
