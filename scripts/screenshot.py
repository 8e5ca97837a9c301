"""Development aid: open the real window, load the default model, ask a question, and save screenshots.

Run under a virtual screen:
    xvfb-run -a -s "-screen 0 1280x860x24" .venv/bin/python scripts/screenshot.py screenshots/
It saves chat.png, engine.png, settings.png, audit.png and sign-in.png there. It works in a data directory of
its own (a temporary folder, with an administrator of its own), never the user's.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from console.core import ConsoleCore
from ui.access.account_dialogs import SignInDialog
from ui.app import apply_style, build_main_window

QUESTION = "What is the capital of France? Answer in one sentence."


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    apply_style(app)
    core = ConsoleCore(data_dir=Path(tempfile.mkdtemp(prefix="llm-console-screenshot-")))
    admin = core.create_first_admin("admin", "screenshot-pass-phrase")
    core.ensure_default_registered()
    window = build_main_window(core, admin)
    window.resize(1280, 820)
    window.show()

    def save(name: str) -> None:
        window.grab().save(str(folder / name))
        print(f"saved {folder / name}")

    def ask(_info) -> None:
        window.chat_panel.input.setPlainText(QUESTION)
        window.chat_panel.send()

    def capture(_request_id, _result) -> None:
        def shots() -> None:
            save("chat.png")
            for panel, name in ((window.engine_panel, "engine.png"), (window.settings_view, "settings.png"),
                                (window.audit_view, "audit.png")):
                window.tabs.setCurrentWidget(panel)
                window.audit_view.refresh()
                window.engine_panel.refresh()
                app.processEvents()
                save(name)
            dialog = SignInDialog(window.session, locked_user="admin", parent=window)
            dialog.show()
            app.processEvents()
            dialog.grab().save(str(folder / "sign-in.png"))
            print(f"saved {folder / 'sign-in.png'}")
            app.quit()

        QTimer.singleShot(300, shots)

    window.adapter.load_finished.connect(ask)
    window.adapter.load_failed.connect(lambda message: (print(message), app.exit(1)))
    window.adapter.generation_finished.connect(capture)
    QTimer.singleShot(200, window.model_bar.load_button.click)
    QTimer.singleShot(180_000, lambda: app.exit(2))
    code = app.exec()
    window.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
