"""`llm-console serve`: the model on the OpenAI-compatible local API, headless.

It loads the model (verified and audited, as the window does), serves the API and `/metrics` (the window's
telemetry and alerts, without it), writes one access-log line per request to standard error, and on SIGTERM or
SIGINT stops accepting, lets running requests finish (up to `--grace` seconds) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from console.access.principal import Principal
from console.api.config import ApiConfig
from console.errors import ConsoleError
from engine import EngineError
from engine.weights.devices import DEVICES, PRECISIONS


def add_parser(commands) -> None:
    serve = commands.add_parser("serve", help="serve the model on the OpenAI-compatible local API, without a window")
    serve.add_argument("--model", help="registered NAME[:VERSION], a GGUF file or a Hugging Face folder "
                                       "(default: the registry's default model)")
    serve.add_argument("--precision", choices=PRECISIONS, default=None, help="default: the engine.precision setting")
    serve.add_argument("--device", choices=DEVICES, default=None, help="default: the engine.device setting")
    serve.add_argument("--host", help="address to listen on (default: the api.host setting, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: the api.port setting, 8741)")
    serve.add_argument("--grace", type=float, default=30.0,
                       help="seconds running requests may take to finish after SIGTERM (default 30)")


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    from console.cli.models import chat_load_target

    _log_to_stderr()
    service = core.api
    changes = {name: value for name, value in (("host", args.host), ("port", args.port)) if value is not None}
    try:
        config = ApiConfig.from_settings(core.settings).changed(**changes)
    except ConsoleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    precision = args.precision or core.settings.get("engine.precision")
    device = args.device or core.settings.get("engine.device")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    target = chat_load_target(core, args.model, precision, device, quiet=True)
    service.loading = str(getattr(target, "name", None) or getattr(target, "ref", None) or getattr(target, "path", "a model"))
    base_url = service.start(principal, config)
    print(f"[serve] listening on {base_url} (health: {base_url.removesuffix('/v1')}/health, metrics: "
          f"{base_url.removesuffix('/v1')}/metrics); loading {service.loading}", file=sys.stderr, flush=True)
    if not config.loopback:
        print(f"[serve] the API is reachable from the network on {config.host}; every request needs a key",
              file=sys.stderr)
    failure: list[Exception] = []

    def load() -> None:
        try:
            info = core.load(principal, target)
            print(f"[serve] serving {info.name} · {info.precision} · {info.device} (loaded in "
                  f"{info.load_seconds:.1f} s)", file=sys.stderr, flush=True)
        except (ConsoleError, EngineError) as error:
            failure.append(error)
            stop.set()
        finally:
            service.loading = None

    threading.Thread(target=load, name="llm-console-serve-load", daemon=True).start()
    core.start_telemetry()  # the window's figures and alerts, for /metrics
    while not stop.wait(1.0):  # a timeout keeps the main thread where a signal handler can run
        pass
    print(f"[serve] stopping: no new requests; running ones have {args.grace:g} s to finish", file=sys.stderr,
          flush=True)
    service.stop(principal, grace_s=args.grace)
    if failure:
        print(f"error: {failure[0]}", file=sys.stderr)
        return 1
    print("[serve] stopped", file=sys.stderr, flush=True)
    return 0


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    for name in ("llm_console.api.access", "console.api"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
