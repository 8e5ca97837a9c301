"""Development aid: open the real window on the API tab with the embedded model loaded and the API serving,
two keys with some use, a stream in flight, and save a screenshot.

Run under a virtual screen:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshot_api.py screenshots/api.png
It works in a data directory of its own (a temporary folder, kept to reuse the converted GGUF), never the user's.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from console.core import ConsoleCore  # noqa: E402
from script_admin import script_admin  # noqa: E402
from ui.app import apply_style, build_main_window  # noqa: E402

DATA_DIR = Path(tempfile.gettempdir()) / "llm-console-screenshot-api"
SCRIPT_USER, SCRIPT_PASSWORD = "api-shot", "a window on the local API"


def signed_in_core(data_dir: Path):
    core = ConsoleCore(data_dir=data_dir)
    return core, script_admin(core, SCRIPT_USER, SCRIPT_PASSWORD)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots/api.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    apply_style(app)
    core, principal = signed_in_core(DATA_DIR)
    window = build_main_window(core, principal)
    window.resize(1400, 860)
    window.show()
    panel = window.api_panel
    window.tabs.setCurrentWidget(panel)
    panel.port.setValue(free_port())
    secrets: list[str] = []

    def use(secret: str, tokens: int, count: int) -> None:
        for _ in range(count):
            httpx.post(f"{core.api.base_url}/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                       timeout=120, json={"model": core.model_info.name, "max_tokens": tokens,
                                          "messages": [{"role": "user", "content": "What is the capital of France?"}]})

    def served(_url: str) -> None:
        for user, label in ((SCRIPT_USER, "grafana"), (SCRIPT_USER, "notebook")):
            secrets.append(core.api.keys.create(principal, user, label, 90 if label == "notebook" else None).secret)
        panel.refresh()
        use(secrets[0], 8, 2)
        use(secrets[1], 16, 1)
        threading.Thread(target=use, args=(secrets[1], 400, 1), daemon=True).start()  # in flight at the capture
        QTimer.singleShot(2500, capture)

    def capture() -> None:
        panel.refresh()
        window.grab().save(str(output))
        print(f"saved {output}")
        app.quit()

    def loaded(_info) -> None:
        panel.adapter.started.connect(served)
        panel.toggle.click()

    window.adapter.load_finished.connect(loaded)
    window.adapter.load_failed.connect(lambda message: (print(message), app.exit(1)))
    QTimer.singleShot(200, window.model_bar.load_button.click)
    QTimer.singleShot(480_000, lambda: app.exit(2))  # a shared machine loads slowly
    code = app.exec()
    window.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
