"""Development aid: open the real window, load the default model, ask a question, and save a screenshot.

Run under a virtual screen:  xvfb-run -a -s "-screen 0 1280x860x24" .venv/bin/python scripts/screenshot.py out.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from console.core import ConsoleCore
from ui.app import apply_style, build_main_window

QUESTION = "What is the capital of France? Answer in one sentence."


def main() -> int:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshot.png")
    app = QApplication(sys.argv)
    apply_style(app)
    window = build_main_window(ConsoleCore())
    window.show()

    def ask(_info) -> None:
        window.chat_panel.input.setPlainText(QUESTION)
        window.chat_panel.send()

    def capture(_request_id, _result) -> None:
        QTimer.singleShot(300, lambda: (window.grab().save(str(output)), print(f"saved {output}"), app.quit()))

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
