"""`llm-console self-test`: checks that this installation can run and prints a checklist — Qt's platform plugin,
the data directory and SQLite, torch, the embedded model answering a question, the local API. Exit 0 or 1.

The installers run it (packaging/); a user runs it when the app does not start. It needs no account: it signs
nobody in and drives the engine directly. Qt is checked in a child process, since a platform plugin that cannot
load aborts the process, and the child runs the UI package's probe (this package does not import Qt).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from console.cli.session import PASSWORD_VARIABLE, USER_VARIABLE

QUESTION = "What is the capital of France?"
EXPECTED_ANSWER = "Paris"
QT_PROBE_TIMEOUT_S = 60
API_START_TIMEOUT_S = 60
# Debian's names for what Qt's xcb plugin needs beyond a minimal system; the .deb declares them.
QT_SYSTEM_LIBRARIES = ("libegl1 libgl1 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3 libxcb-cursor0 "
                       "libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0 libxcb-image0 "
                       "libxcb-xinerama0 libxcb-xkb1")


@dataclass
class CheckResult:
    name: str
    passed: bool | None  # None: skipped, with the reason in `detail`
    detail: str
    seconds: float = 0.0

    @property
    def mark(self) -> str:  # ASCII: a minimal system's terminal may have no UTF-8 locale
        return {True: "[ ok ]", False: "[FAIL]", None: "[skip]"}[self.passed]


def add_self_test_parser(commands) -> None:
    parser = commands.add_parser("self-test", help="check that this installation works (Qt, data folder, SQLite, "
                                                   "torch, the embedded model, the local API); exit 0 or 1")
    parser.add_argument("--qt-probe", action="store_true", help=argparse.SUPPRESS)  # the child of the Qt check


def self_command() -> list[str]:
    """How to start this program again: the bundle's executable, or this Python running the `ui` package."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "ui"]


def child_environment() -> dict[str, str]:
    environment = dict(os.environ)
    if not getattr(sys, "frozen", False):  # the child must import the same packages as this process
        root = str(Path(__file__).resolve().parents[2])
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [root, environment.get("PYTHONPATH")]))
    return environment


def check_qt_platform(command: list[str] | None = None) -> CheckResult:
    """Start Qt's platform plugin in a child, the way the window would. Without a display, the offscreen plugin
    starts instead and the child checks that the xcb plugin's libraries load."""
    environment = child_environment()
    has_display = bool(environment.get("DISPLAY") or environment.get("WAYLAND_DISPLAY"))
    if not has_display and not environment.get("QT_QPA_PLATFORM"):
        environment["QT_QPA_PLATFORM"] = "offscreen"
    try:
        child = subprocess.run([*(command or self_command()), "self-test", "--qt-probe"], capture_output=True,
                               text=True, timeout=QT_PROBE_TIMEOUT_S, env=environment, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return CheckResult("Qt platform plugin", False, f"Qt did not start within {QT_PROBE_TIMEOUT_S} s.")
    lines = [line.strip() for line in (child.stdout + child.stderr).splitlines() if line.strip()]
    if child.returncode != 0:
        reason = " ".join(lines[-3:]) or f"the probe exited with status {child.returncode}"
        return CheckResult("Qt platform plugin", False,
                           f"{reason} — the system libraries Qt needs may be missing; on Debian or Ubuntu: "
                           f"sudo apt install {QT_SYSTEM_LIBRARIES}")
    detail = lines[-1] if lines else "started"
    if not has_display:
        detail += " (no display here: the window itself needs a desktop session)"
    return CheckResult("Qt platform plugin", True, detail)


def check_data_directory() -> CheckResult:
    from console.storage import paths

    try:
        folder = paths.data_dir()
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".self-test-") as scratch:
            scratch.write(b"llm-console self-test")
            scratch.flush()
            os.fsync(scratch.fileno())
        free_gib = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize / 2**30
    except OSError as error:
        where = os.environ.get(paths.DATA_DIR_VARIABLE) or "the user data directory"
        return CheckResult("Data directory", False, f"cannot write {error.filename or where}: {error.strerror}. "
                           f"Make it writable, or set {paths.DATA_DIR_VARIABLE} to a folder you own.")
    return CheckResult("Data directory", True, f"{folder} is writable ({free_gib:.1f} GiB free)")


def check_sqlite() -> CheckResult:
    from console.errors import DatabaseError
    from console.storage import migrations, paths
    from console.storage.database import open_database

    try:
        folder = paths.data_dir()
        with tempfile.TemporaryDirectory(dir=folder, prefix=".self-test-") as scratch_folder:
            connection = sqlite3.connect(Path(scratch_folder) / "scratch.db")
            with connection:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("CREATE TABLE probe (value TEXT)")
                connection.execute("INSERT INTO probe VALUES ('written')")
            read_back = connection.execute("SELECT value FROM probe").fetchone()[0]
            connection.close()
        database = open_database(paths.database_path(folder))  # creates or migrates it, as the app's start would
        try:
            applied = len(migrations.applied_migrations(database.db))
            health = database.integrity_check()
        finally:
            database.close()
    except (sqlite3.Error, OSError, DatabaseError) as error:
        return CheckResult("SQLite", False, f"{error}")
    if read_back != "written" or health != "ok":
        return CheckResult("SQLite", False, f"the database at {paths.database_path(folder)} reports: {health}")
    return CheckResult("SQLite", True, f"SQLite {sqlite3.sqlite_version}: a scratch database written and read "
                                       f"back; registry.db intact, {applied} migrations applied")


def check_torch() -> CheckResult:
    try:
        import torch
    except ImportError as error:
        return CheckResult("PyTorch", False, f"cannot import torch: {error}")
    product = torch.ones(64, 64) @ torch.ones(64, 64)
    if float(product[0, 0]) != 64.0:
        return CheckResult("PyTorch", False, f"a 64x64 matrix product gave {float(product[0, 0])} instead of 64")
    gpu = f", CUDA GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA GPU"
    return CheckResult("PyTorch", True, f"torch {torch.__version__}, {torch.get_num_threads()} threads{gpu}")


def check_embedded_model() -> CheckResult:
    from console.registry.default_model import DEFAULT_MODEL_NAME, default_model_path
    from console.storage import paths
    from engine import EngineError, GenerationRequest, InferenceEngine, ModelSpec, SamplingParams

    # The converted copy goes where the app keeps it, so the window's first load is quick afterwards.
    engine = InferenceEngine(cache_dir=paths.cache_dir(), compile_decode="off")
    try:
        started = time.perf_counter()
        engine.load(ModelSpec(str(default_model_path()), name=DEFAULT_MODEL_NAME))
        loaded = time.perf_counter()
        result = engine.generate(GenerationRequest(messages=[{"role": "user", "content": QUESTION}],
                                                   params=SamplingParams(temperature=0.0, max_new_tokens=24)),
                                 timeout=60)
        answered = time.perf_counter()
    except EngineError as error:
        return CheckResult("Embedded model", False, str(error))
    finally:
        engine.shutdown()
    answer = " ".join(result.text.split())
    detail = (f"{DEFAULT_MODEL_NAME} answered {QUESTION!r} with {answer[:60]!r} "
              f"(load {loaded - started:.1f} s, answer {answered - loaded:.1f} s)")
    return CheckResult("Embedded model", EXPECTED_ANSWER in result.text, detail)


def check_local_api(command: list[str] | None = None) -> CheckResult:
    """Start `llm-console serve` on a free loopback port and ask it for /v1/models (a 401 also counts as answering:
    the models are listed to holders of an API key)."""
    if importlib.util.find_spec("console.api") is None:
        return CheckResult("Local API", None, "this version has no local API (console.api); nothing to check")
    if not os.environ.get(USER_VARIABLE):  # `serve` signs in like every command; a fresh install has no account
        return CheckResult("Local API", None, f"starting `llm-console serve` needs a user: set {USER_VARIABLE} and "
                                              f"{PASSWORD_VARIABLE} (an administrator) to include this check")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([*(command or self_command()), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_environment(),
                              stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
                    count = len(json.load(response).get("data", []))
                    return CheckResult("Local API", True, f"/v1/models on 127.0.0.1:{port} lists {count} model(s)")
            except urllib.error.HTTPError as error:
                if error.code == 401:
                    return CheckResult("Local API", True, f"/v1/models on 127.0.0.1:{port} answers (401 without a key)")
                if error.code != 503:  # 503: still loading the model
                    return CheckResult("Local API", False, f"/v1/models answered HTTP {error.code}")
            except (urllib.error.URLError, ConnectionError):
                pass
            if server.poll() is None:
                time.sleep(0.25)  # polling a starting server: nothing else tells us when it listens
        if server.poll() is not None:
            output = " ".join(server.stderr.read().split()[-40:])
            return CheckResult("Local API", False, f"`llm-console serve` exited ({server.returncode}): {output}")
        return CheckResult("Local API", False, f"no answer on 127.0.0.1:{port} within {API_START_TIMEOUT_S} s")
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def run_checks(launch_available: bool, report: Callable[[CheckResult], None]) -> list[CheckResult]:
    """Every check in order; a check whose prerequisite failed is skipped with the reason."""
    results: list[CheckResult] = []

    def run(name: str, check: Callable[[], CheckResult], needs: tuple[str, ...] = ()) -> None:
        failed = [result.name for result in results if result.name in needs and not result.passed]
        started = time.perf_counter()
        if failed:
            result = CheckResult(name, None, f"needs {' and '.join(failed)}")
        else:
            try:
                result = check()
            except Exception as error:  # a check that breaks is a failed check, not a crashed self-test
                result = CheckResult(name, False, f"{type(error).__name__}: {error}")
        result.seconds = time.perf_counter() - started
        results.append(result)
        report(result)

    if launch_available:
        run("Qt platform plugin", check_qt_platform)
    else:
        run("Qt platform plugin", lambda: CheckResult("Qt platform plugin", None, "started without the desktop app"))
    run("Data directory", check_data_directory)
    run("SQLite", check_sqlite, needs=("Data directory",))
    run("PyTorch", check_torch)
    run("Embedded model", check_embedded_model, needs=("Data directory", "PyTorch"))
    run("Local API", check_local_api, needs=("Data directory", "SQLite", "Embedded model"))
    return results


def print_result(result: CheckResult) -> None:
    print(f"  {result.mark} {result.name:<19} {result.detail}  ({result.seconds:.1f} s)", flush=True)


def run_self_test(args: argparse.Namespace, launch_gui: Callable[[argparse.Namespace], int] | None) -> int:
    if args.qt_probe:  # the child of check_qt_platform: the UI package's launcher runs the probe
        return launch_gui(args) if launch_gui is not None else 2
    try:
        version = importlib.metadata.version("llm-console")
    except importlib.metadata.PackageNotFoundError:
        version = "(version unknown)"
    print(f"LLM Console {version} self-test", flush=True)
    started = time.perf_counter()
    results = run_checks(launch_gui is not None, print_result)
    failed = [result.name for result in results if result.passed is False]
    elapsed = time.perf_counter() - started
    if failed:
        print(f"{len(failed)} of {len(results)} checks failed ({', '.join(failed)}) in {elapsed:.1f} s.")
        return 1
    print(f"All checks passed in {elapsed:.1f} s.")
    return 0
