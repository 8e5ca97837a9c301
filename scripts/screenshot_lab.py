"""Development aid: open the real window on the Lab tab, showing the newest stored sweep with an SLA, and save a
screenshot. A data directory without a sweep gets a short one of the embedded model first (a few minutes).

Run under a virtual screen:
    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshot_lab.py screenshots/lab.png \
        [--data-dir DIR] [--perplexity-increase 1]
The data directory defaults to one of the script's own; another one (a `llm-console lab sweep`'s) is signed in
to as LLM_CONSOLE_USER with LLM_CONSOLE_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from console.core import ConsoleCore  # noqa: E402
from script_admin import script_admin  # noqa: E402
from console.lab.plan import SweepPlan  # noqa: E402
from ui.app import apply_style, build_main_window  # noqa: E402

DATA_DIR = Path(tempfile.gettempdir()) / "llm-console-screenshot-lab"
SCRIPT_USER, SCRIPT_PASSWORD = "lab-shot", "a window on the tuning lab"
SHORT_PLAN = SweepPlan(precisions=("fp32", "int8"), batch_sizes=(4, 8), concurrency=(1, 4, 8), new_tokens=16)


def signed_in(data_dir: Path):
    """The core and the principal the window acts for."""
    core = ConsoleCore(data_dir=data_dir)
    user, password = os.environ.get("LLM_CONSOLE_USER"), os.environ.get("LLM_CONSOLE_PASSWORD")
    if data_dir != DATA_DIR and user and password:
        return core, core.sign_in(user, password)
    return core, script_admin(core, SCRIPT_USER, SCRIPT_PASSWORD)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output", nargs="?", default="screenshots/lab.png")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--perplexity-increase", type=float, default=1.0, help="the SLA shown (percent)")
    args = parser.parse_args()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    apply_style(app)
    core, principal = signed_in(args.data_dir)
    if not core.lab.sweeps(principal):
        print("no stored sweep: running a short one of the embedded model", file=sys.stderr)
        core.ensure_default_registered()
        sweep = core.lab.start(principal, core.lab.target(core.default_load_target("auto", "cpu")), SHORT_PLAN, "cpu")
        core.lab.run(principal, sweep.id, lambda step: print(f"[{step.done}/{step.total}] {step.message}", file=sys.stderr))
    window = build_main_window(core, principal)
    window.resize(1400, 900)
    window.show()
    panel = window.lab_panel
    window.tabs.setCurrentWidget(panel)
    panel.refresh(select=core.lab.sweeps(principal)[0].id)
    panel.perplexity_limit.setValue(args.perplexity_increase)

    def capture() -> None:
        window.grab().save(str(output))
        print(f"saved {output}")
        app.quit()

    QTimer.singleShot(5000, capture)  # the model bar's estimate reads the model's header in a worker
    code = app.exec()
    window.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
