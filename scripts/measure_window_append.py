"""Benchmark: what one streamed token costs the window's UI thread, with no engine running beside it.

The real main window on a real X server; a reply is fed to the chat panel through the adapter's own
`text_received` signal at a fixed rate (26 tokens a second by default, this VM's int8 speed), the pieces cut from
a fixed English text. Prints the UI thread's CPU clock per token and as a share of one core, per round and as a
median. No model, no engine, so the VM's swings in compute speed move these figures far less than a real reply's.

    xvfb-run -a -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb .venv/bin/python scripts/measure_window_append.py
    ... scripts/measure_window_append.py --rate 60 --tokens 512 --rounds 5 --screenshot shot.png

Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from script_admin import script_admin  # noqa: E402

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

WORDS = ("the keeper of the lighthouse watched the sea every night and the waves came over the rocks while the "
         "gulls cried above him and he wrote in his log about ships that passed far from the shore").split()
QUESTION = "Write a long story about a lighthouse keeper and the sea."


def reply_pieces(tokens: int) -> list[str]:
    """Four paragraphs of words, cut into token-sized pieces (up to 5 characters with their leading space)."""
    paragraphs = []
    for paragraph in range(4):
        words = [WORDS[(paragraph * 7 + index * 5) % len(WORDS)] for index in range(60)]
        paragraphs.append(" ".join(words).capitalize() + ".")
    return re.findall(r"\s*\S{1,5}|\s+", "\n\n".join(paragraphs))[:tokens]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=26.0, help="tokens per second (default 26)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--screenshot", metavar="PNG", help="save the screen after the last round")
    args = parser.parse_args()

    from console.core import ConsoleCore
    from ui.app import apply_style, build_main_window

    app = QApplication(sys.argv)
    apply_style(app)
    core = ConsoleCore(data_dir=Path(tempfile.mkdtemp(prefix="llm-console-append-")))
    window = build_main_window(core, script_admin(core, "append-probe", "append probe password"))
    window.resize(1280, 860)
    window.show()
    panel = window.chat_panel
    pieces = reply_pieces(args.tokens)
    rounds: list[tuple[float, float]] = []
    state: dict = {}
    feeder = QTimer()
    feeder.setInterval(max(1, round(1000 / args.rate)))

    def start_round() -> None:
        panel.new_chat()
        panel._add_message("user", QUESTION)
        panel._reply_view = panel._add_message("assistant", "")  # what send() sets up, without an engine
        panel.active_request = 1
        state.update(index=0, wall=time.perf_counter(), cpu=time.thread_time())
        feeder.start()

    def feed() -> None:
        if state["index"] < len(pieces):
            window.adapter.text_received.emit(1, pieces[state["index"]])
            state["index"] += 1
            return
        feeder.stop()
        panel._reply_view.flush(final=True)
        span, cpu = time.perf_counter() - state["wall"], time.thread_time() - state["cpu"]
        rounds.append((cpu / span, cpu / len(pieces)))
        print(f"  round {len(rounds)}: UI thread {cpu / span * 100:.1f} % of a core, "
              f"{cpu / len(pieces) * 1000:.2f} ms a token", flush=True)
        panel.active_request, panel._reply_view = None, None
        if len(rounds) < args.rounds:
            QTimer.singleShot(300, start_round)
        else:
            if args.screenshot:
                app.primaryScreen().grabWindow(0).save(args.screenshot)
            QTimer.singleShot(100, app.quit)

    feeder.timeout.connect(feed)
    QTimer.singleShot(1500, start_round)  # the window's first layout and paint are not a token's cost
    app.exec()
    window.shutdown()
    print(f"{len(pieces)} tokens at {args.rate:g} tok/s into the real window (platform {app.platformName()}): "
          f"UI thread median {statistics.median(r[0] for r in rounds) * 100:.1f} % of a core, "
          f"{statistics.median(r[1] for r in rounds) * 1000:.2f} ms a token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
