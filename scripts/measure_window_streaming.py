"""Benchmark: does a reply stream as fast in the window as on the command line, and what does the window's UI
thread cost meanwhile? The real window on a real X server, the question typed like a user (xdotool), each
window reply interleaved with `llm-console chat` for the same question, quiet and then beside a busy core.

    xvfb-run -a -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python scripts/measure_window_streaming.py                      # embedded SmolLM2, 256 tokens
    ... scripts/measure_window_streaming.py --tiny --rounds 1 --max-new-tokens 32  # check the script quickly
    ... scripts/measure_window_streaming.py --screenshots shots/                   # also save screenshots

Both sides are greedy with the CLI's default sampling, the same system prompt and precision, and the window's
response cache is off (a repeated greedy question would be a cache hit). tok/s is the engine's own figure of
each reply (tokens after the first over the time since the first). UI-thread CPU is that thread's CPU clock
between the reply's first piece and its end, as a share of one core. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from script_admin import script_admin  # noqa: E402

from PySide6.QtCore import QObject, Qt, Signal  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

DATA_DIR = Path(tempfile.gettempdir()) / "llm-console-window-streaming"  # keeps the converted GGUF between runs
SCRIPT_USER, SCRIPT_PASSWORD = "streaming-probe", "window against the command line"
QUESTION = "Write a long story about a lighthouse keeper and the sea."
CODE_QUESTION = "Write a Python function that checks whether a number is prime, then explain how it works."
SYSTEM = "You are a helpful assistant."
CLI_FIGURES = re.compile(r"\[(\d+) tokens · ([\d.]+) tok/s")
REPLY_TIMEOUT_S = 600


class OnUiThread(QObject):
    """Runs a callable on the UI thread for the driver thread and hands back its result."""

    _call = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._call.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def __call__(self, work):
        box: dict = {"done": threading.Event()}
        self._call.emit((work, box))
        box["done"].wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _run(self, item) -> None:
        work, box = item
        try:
            box["value"] = work()
        except BaseException as error:  # re-raised on the driver thread
            box["error"] = error
        box["done"].set()


class ReplyWatch(QObject):
    """Marks, on the UI thread, the first piece and the end of one reply with the UI thread's CPU clock."""

    def __init__(self, adapter) -> None:
        super().__init__()
        self.finished = threading.Event()
        self.first: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None
        self.result = None
        self.pieces = 0
        adapter.text_received.connect(self._piece)
        adapter.generation_finished.connect(self._finished)

    def arm(self) -> None:
        self.finished.clear()
        self.first = self.end = self.result = None
        self.pieces = 0

    def _piece(self, _request_id: int, _piece: str) -> None:
        self.pieces += 1
        if self.first is None:
            self.first = (time.perf_counter(), time.thread_time())

    def _finished(self, _request_id: int, result) -> None:
        self.end = (time.perf_counter(), time.thread_time())
        self.result = result
        self.finished.set()


def x_server_pid() -> int | None:
    """The Xvfb (or other X server) serving $DISPLAY, to count its CPU too: it draws what the window sends."""
    display = os.environ.get("DISPLAY", "")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arguments and Path(arguments[0].decode(errors="replace")).name in ("Xvfb", "Xorg", "X") and \
                display.encode() in arguments:
            return int(entry.name)
    return None


def cpu_seconds(stat_path: Path) -> float:
    """utime + stime of a process or thread from its /proc stat file."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="window and CLI replies per condition (default 3)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--precision", default="auto", help="both sides (default auto)")
    parser.add_argument("--conditions", default="quiet,busy",
                        help="comma-separated: quiet, busy (beside `python3 -c 'while True: pass'`)")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny random model instead of SmolLM2")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"the script's data directory (default {DATA_DIR})")
    parser.add_argument("--screenshots", metavar="DIR", help="after measuring, stream a reply with code and save screenshots")
    args = parser.parse_args()
    # Why the engine changed its thread count, as it happens: a window reply slower than the CLI's often is one
    # that ran part of its time on fewer threads.
    import logging

    thread_log = logging.getLogger("engine.loop")
    thread_log.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(asctime)s engine: %(message)s", "%H:%M:%S"))
    thread_log.addHandler(handler)

    from console.core import ConsoleCore
    from engine import ModelSpec
    from ui.app import apply_style, build_main_window

    app = QApplication(sys.argv)
    apply_style(app)
    core = ConsoleCore(data_dir=args.data_dir)
    admin = script_admin(core, SCRIPT_USER, SCRIPT_PASSWORD)
    if args.tiny:
        from tests.tiny_model import build_tiny_model

        model_path = str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
        spec = ModelSpec(model_path, precision=args.precision, device="cpu")
    else:
        spec = core.default_model_spec(precision=args.precision, device="cpu")
        model_path = spec.path
    window = build_main_window(core, admin)
    window.resize(1280, 860)
    window.show()
    on_ui = OnUiThread()
    watch = ReplyWatch(window.adapter)
    panel = window.chat_panel
    typing = "xdotool" if os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb" and shutil.which("xdotool") else "Qt key events"
    figures: dict[str, dict[str, list]] = {}
    idle: list[float] = []
    notes: list[str] = []

    def prepare_window() -> None:
        panel.new_chat()
        controls = panel.controls
        controls.system_prompt.setPlainText(SYSTEM)
        controls.temperature.setValue(0.0)
        controls.top_p.setValue(0.95)
        controls.top_k.setValue(40)
        controls.repetition_penalty.setValue(1.1)
        controls.max_new_tokens.setValue(args.max_new_tokens)
        controls.seed.setValue(-1)
        window.activateWindow()
        window.raise_()
        panel.input.clear()
        panel.input.setFocus()

    def type_question(question: str) -> None:
        """Into the chat input as keystrokes, then Ctrl+Enter; through the X server when xdotool is there."""
        nonlocal typing
        if typing == "xdotool":
            subprocess.run(["xdotool", "type", "--delay", "8", question], check=False)
            typed = on_ui(panel.input.toPlainText)
            if typed == question:
                subprocess.run(["xdotool", "key", "ctrl+Return"], check=False)
                return
            notes.append(f"xdotool's keys did not reach the window (got {typed!r}); typed through Qt instead")
            typing = "Qt key events"
        from PySide6.QtTest import QTest

        def through_qt() -> None:
            panel.input.clear()
            QTest.keyClicks(panel.input, question)
            QTest.keyClick(panel.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)

        on_ui(through_qt)

    def window_reply(question: str = QUESTION) -> dict:
        on_ui(prepare_window)
        watch.arm()
        x_pid = x_server_pid()
        x_before = cpu_seconds(Path(f"/proc/{x_pid}/stat")) if x_pid else None
        process_before = time.process_time()
        type_question(question)
        threads: list[int] = []  # the engine's intra-op thread count, sampled while the reply streams
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while not watch.finished.wait(0.05):
            if watch.first is not None:
                threads.append(core.engine_snapshot(admin).intra_op_threads)
            if time.monotonic() > deadline:
                raise RuntimeError("the window's reply did not finish in time")
        result = watch.result
        span = watch.end[0] - watch.first[0]
        ui_cpu = watch.end[1] - watch.first[1]
        row = {"tok/s": result.tokens_per_second or 0.0, "tokens": result.completion_tokens,
               "ui": ui_cpu / span if span > 0 else 0.0, "pieces": watch.pieces,
               "process": (time.process_time() - process_before) / span if span > 0 else 0.0, "threads": threads}
        if x_before is not None:
            row["x"] = (cpu_seconds(Path(f"/proc/{x_pid}/stat")) - x_before) / span if span > 0 else 0.0
        return row

    def cli_reply() -> dict:
        environment = dict(os.environ, LLM_CONSOLE_DATA_DIR=str(args.data_dir), LLM_CONSOLE_USER=SCRIPT_USER,
                           LLM_CONSOLE_PASSWORD=SCRIPT_PASSWORD)
        command = [sys.executable, "-m", "console", "chat", QUESTION, "--model", model_path, "--system", SYSTEM,
                   "--precision", args.precision, "--device", "cpu", "--max-new-tokens", str(args.max_new_tokens),
                   "--temperature", "0", "--top-p", "0.95", "--top-k", "40", "--repetition-penalty", "1.1"]
        done = subprocess.run(command, capture_output=True, text=True, env=environment,
                              cwd=Path(__file__).resolve().parent.parent, timeout=REPLY_TIMEOUT_S)
        match = CLI_FIGURES.search(done.stderr)
        if done.returncode != 0 or match is None:
            raise RuntimeError(f"llm-console chat failed ({done.returncode}): {done.stderr[-800:]}")
        return {"tokens": int(match.group(1)), "tok/s": float(match.group(2))}

    def screenshots(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)

        def grab(name: str) -> None:
            on_ui(lambda: app.primaryScreen().grabWindow(0).save(str(folder / name)))
            print(f"saved {folder / name}", flush=True)

        on_ui(prepare_window)
        watch.arm()
        type_question(CODE_QUESTION)
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while watch.pieces < 60 and not watch.finished.is_set() and time.monotonic() < deadline:
            watch.finished.wait(0.05)
        grab("streaming.png")
        watch.finished.wait(REPLY_TIMEOUT_S)
        grab("streamed.png")
        on_ui(lambda: window.resize(900, 860))
        time.sleep(0.5)  # the window manager-less X server resizes at once; let one frame paint
        grab("streamed-narrow.png")

    def idle_ui_share(seconds: float = 5.0) -> float:
        """The UI thread's CPU while the window only waits (its timers: telemetry, engine figures, audit)."""
        before = on_ui(time.thread_time)
        time.sleep(seconds)
        return (on_ui(time.thread_time) - before) / seconds

    def drive() -> None:
        try:
            on_ui(lambda: core.configure_engine(admin, response_cache=False))
            on_ui(prepare_window)
            idle.append(idle_ui_share())
            for condition in [c.strip() for c in args.conditions.split(",") if c.strip()]:
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "busy" else None
                rows = figures.setdefault(condition, {"window": [], "cli": []})
                try:
                    for round_index in range(args.rounds):
                        order = ("window", "cli") if round_index % 2 == 0 else ("cli", "window")
                        for side in order:
                            row = window_reply() if side == "window" else cli_reply()
                            rows[side].append(row)
                            print(f"  {condition:5s} round {round_index + 1} {side:6s} {row['tok/s']:5.1f} tok/s "
                                  f"{row['tokens']:4d} tokens" + (f"  UI thread {row['ui'] * 100:4.1f} %"
                                                                   if side == "window" else ""), flush=True)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
            if args.screenshots:
                screenshots(Path(args.screenshots))
        except Exception as error:  # the figures so far are still printed
            notes.append(f"stopped early: {error}")
        on_ui(app.quit)

    loaded_info: list = []

    def loaded(info) -> None:
        loaded_info.append(info)
        threading.Thread(target=drive, name="measure-driver", daemon=True).start()

    window.adapter.load_finished.connect(loaded)
    window.adapter.load_failed.connect(lambda message: (notes.append(f"load failed: {message}"), app.quit()))
    print(f"loading {spec.name or spec.path} …", flush=True)
    window.adapter.load(spec)
    app.exec()
    window.shutdown()
    info = loaded_info[0] if loaded_info else None

    print(f"\nWindow against `llm-console chat`, the same question, greedy, up to {args.max_new_tokens} new tokens, "
          f"{info.name if info else '?'} {info.precision if info else ''} · cpu, {os.cpu_count()} CPU cores, "
          f"platform {app.platformName()}, typed with {typing}, rounds interleaved")
    for condition, rows in figures.items():
        window_speeds = [row["tok/s"] for row in rows["window"]]
        cli_speeds = [row["tok/s"] for row in rows["cli"]]
        if not window_speeds or not cli_speeds:
            continue
        title = "quiet machine" if condition == "quiet" else "beside a busy core"
        print(f"  {title}:")
        print(f"    window tok/s  {' '.join(f'{v:5.1f}' for v in window_speeds)}   median {statistics.median(window_speeds):5.1f}"
              f"   tokens {sorted({row['tokens'] for row in rows['window']})}")
        print(f"    CLI tok/s     {' '.join(f'{v:5.1f}' for v in cli_speeds)}   median {statistics.median(cli_speeds):5.1f}"
              f"   tokens {sorted({row['tokens'] for row in rows['cli']})}")
        print(f"    window / CLI  {statistics.median(window_speeds) / statistics.median(cli_speeds):.2f}x")
        ui = [row["ui"] * 100 for row in rows["window"]]
        line = f"    while the window streams: UI thread {statistics.median(ui):.1f} % of a core (max {max(ui):.1f} %)"
        line += f", whole app {statistics.median(row['process'] * 100 for row in rows['window']):.0f} %"
        if all("x" in row for row in rows["window"]):
            line += f", X server {statistics.median(row['x'] * 100 for row in rows['window']):.1f} %"
        print(line + f", {statistics.median(row['pieces'] for row in rows['window']):.0f} pieces per reply")
        samples = [count for row in rows["window"] for count in row["threads"]]
        if samples:
            shares = ", ".join(f"{count} for {samples.count(count) / len(samples) * 100:.0f} %"
                               for count in sorted(set(samples), reverse=True))
            print(f"    the window's engine threads while it streams: {shares} of the time (sampled every 50 ms)")
    if idle:
        print(f"  the UI thread while the window waits (no reply): {idle[0] * 100:.1f} % of a core")
    for note in notes:
        print(f"  note: {note}")
    return 1 if any(note.startswith(("stopped early", "load failed")) for note in notes) else 0


if __name__ == "__main__":
    sys.exit(main())
