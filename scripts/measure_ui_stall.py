"""Benchmark: how long can the UI thread stall while the telemetry dashboard redraws at 10 Hz and the engine
generates? A 10 ms probe timer on the UI thread records the gaps between its ticks; the longest gap is the
longest time the event loop could not react.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/measure_ui_stall.py            # embedded SmolLM2
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/measure_ui_stall.py --tiny     # tiny random model

Two phases of equal length with the same load: the dashboard on screen (charts at 10 Hz, sampling every
100 ms), then the chat tab on screen (the charts do not draw). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from script_admin import script_admin  # noqa: E402

PROBE_MS = 10
DATA_DIR = Path(tempfile.gettempdir()) / "llm-console-stall"
SCRIPT_USER, SCRIPT_PASSWORD = "stall-probe", "how long the ui thread waits"
IN_FLIGHT = 3
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]


class Probe:
    """Records the gaps between ticks of a precise 10 ms timer on the UI thread."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._last: float | None = None
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps, self._last = [], None
        self.timer.start(PROBE_MS)

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.gaps

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny random model of the tests instead of SmolLM2")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="Python's thread switch interval in seconds (default 0.005): how long the UI thread may "
                             "wait for the GIL while the scheduler thread runs Python")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    from console.core import ConsoleCore
    from engine import ModelSpec, SamplingParams
    from ui.app import apply_style, build_main_window

    app = QApplication(sys.argv)
    apply_style(app)
    core = ConsoleCore(data_dir=DATA_DIR)  # the script's own: keeps the converted GGUF between runs
    admin = script_admin(core, SCRIPT_USER, SCRIPT_PASSWORD)  # the window's panels need a principal
    window = build_main_window(core, admin)
    window.resize(1280, 860)
    window.show()
    panel = window.telemetry_panel
    panel.interval_combo.setCurrentText("100 ms")
    redraw_costs: list[float] = []
    original_redraw = panel.redraw

    def timed_redraw(*redraw_args, **redraw_kwargs):
        started = time.perf_counter()
        drawn = original_redraw(*redraw_args, **redraw_kwargs)
        if drawn:
            redraw_costs.append(time.perf_counter() - started)
        return drawn

    panel.timer.timeout.disconnect()
    panel.timer.timeout.connect(timed_redraw)

    if args.tiny:
        from tests.tiny_model import build_tiny_model

        spec = ModelSpec(str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")), precision="fp32", device="cpu")
    else:
        spec = core.default_model_spec(precision="fp32", device="cpu")
    print(f"loading {spec.name or spec.path} …", flush=True)
    core.load_model(admin, spec)

    params = SamplingParams(temperature=0.8, max_new_tokens=160, seed=1, ignore_eos=True)
    generating = {"on": True}
    in_flight: set[int] = set()

    def keep_busy(request_id=None, _result=None) -> None:
        in_flight.discard(request_id)
        while generating["on"] and len(in_flight) < IN_FLIGHT:
            in_flight.add(window.adapter.chat(PROMPT, params))

    window.adapter.generation_finished.connect(keep_busy)
    probe = Probe()
    results: dict[str, dict] = {}
    phases = [("dashboard on screen, charts at 10 Hz", panel), ("chat on screen, charts idle", window.chat_panel)]

    def run_phase(index: int) -> None:
        if index == len(phases):
            generating["on"] = False
            window.adapter.cancel_all()
            app.quit()
            return
        name, tab = phases[index]
        window.tabs.setCurrentWidget(tab)
        redraw_costs.clear()
        before = core.engine_snapshot(admin).generated_tokens_total
        probe.start()
        started = time.perf_counter()

        def finish() -> None:
            gaps = probe.stop()
            elapsed = time.perf_counter() - started
            tokens = core.engine_snapshot(admin).generated_tokens_total - before
            results[name] = {
                "longest": max(gaps), "p99": sorted(gaps)[int(0.99 * (len(gaps) - 1))], "median": statistics.median(gaps),
                "redraws": len(redraw_costs), "redraw_mean": statistics.mean(redraw_costs) if redraw_costs else 0.0,
                "redraw_max": max(redraw_costs, default=0.0), "tokens_per_s": tokens / elapsed,
            }
            run_phase(index + 1)

        QTimer.singleShot(int(args.seconds * 1000), finish)

    keep_busy()
    QTimer.singleShot(1500, lambda: run_phase(0))  # let the batch fill first
    app.exec()
    window.shutdown()

    print(f"\nUI-thread probe every {PROBE_MS} ms, {args.seconds:.0f} s per phase, {IN_FLIGHT} requests generating, "
          f"{os.cpu_count()} CPU cores, GIL switch interval {sys.getswitchinterval() * 1000:g} ms")
    for name, figures in results.items():
        print(f"  {name}:")
        print(f"    longest gap between ticks {figures['longest'] * 1000:6.1f} ms   p99 {figures['p99'] * 1000:5.1f} ms   "
              f"median {figures['median'] * 1000:5.1f} ms")
        print(f"    redraw passes {figures['redraws']:4d}   mean {figures['redraw_mean'] * 1000:5.1f} ms   "
              f"max {figures['redraw_max'] * 1000:5.1f} ms   engine {figures['tokens_per_s']:.1f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
