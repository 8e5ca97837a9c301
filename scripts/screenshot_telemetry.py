"""Development aid: open the real window on the Telemetry tab, load the embedded model, keep a few replies
generating, and save a screenshot while they run (live engine and CPU charts).

Run under a virtual screen:
    xvfb-run -a -s "-screen 0 1280x860x24" .venv/bin/python scripts/screenshot_telemetry.py screenshots/telemetry.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from console.core import ConsoleCore  # noqa: E402
from script_admin import script_admin  # noqa: E402
from engine import SamplingParams  # noqa: E402
from ui.app import apply_style, build_main_window  # noqa: E402

QUESTION = "Tell me a long story about a lighthouse keeper."
IN_FLIGHT = 3
GENERATE_S = 45  # history on the charts before the capture
DATA_DIR = Path(tempfile.gettempdir()) / "llm-console-screenshot-telemetry"  # keeps the converted GGUF between runs
SCRIPT_USER, SCRIPT_PASSWORD = "telemetry-shot", "a window on the dashboard"


def signed_in_core(data_dir: Path):
    """A core on a data directory of this script's own and its own administrator's principal (the window's
    panels need one; the user's real data directory is never touched)."""
    core = ConsoleCore(data_dir=data_dir)
    return core, script_admin(core, SCRIPT_USER, SCRIPT_PASSWORD)


def main() -> int:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots/telemetry.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    apply_style(app)
    window = build_main_window(*signed_in_core(DATA_DIR))
    window.resize(1280, 860)
    window.show()
    panel = window.telemetry_panel
    panel.interval_combo.setCurrentText("250 ms")
    window.tabs.setCurrentWidget(panel)
    in_flight: set[int] = set()
    params = SamplingParams(temperature=0.8, max_new_tokens=24, seed=7)
    state = {"generating": True}

    def keep_busy(request_id=None, _result=None) -> None:
        in_flight.discard(request_id)
        while state["generating"] and len(in_flight) < IN_FLIGHT:
            in_flight.add(window.adapter.chat([{"role": "user", "content": QUESTION}], params))

    def capture() -> None:
        window.grab().save(str(output))
        print(f"saved {output}")
        state["generating"] = False
        window.adapter.cancel_all()
        app.quit()

    def loaded(_info) -> None:
        window.tabs.setCurrentWidget(panel)
        keep_busy()
        QTimer.singleShot(GENERATE_S * 1000, capture)

    window.adapter.load_finished.connect(loaded)
    window.adapter.load_failed.connect(lambda message: (print(message), app.exit(1)))
    window.adapter.generation_finished.connect(keep_busy)
    QTimer.singleShot(200, window.model_bar.load_button.click)
    QTimer.singleShot(240_000, lambda: app.exit(2))
    code = app.exec()
    window.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
