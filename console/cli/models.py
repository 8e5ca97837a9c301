"""`llm-console models …`: the model registry for admins on SSH, on the same service code as the Models tab.

Results go to standard output, progress to standard error; errors print `error: …` and exit 1, a failed
verification or manifest check exits 1 after naming each file with its expected and found SHA-256.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

from console.registry.checksums import HashProgress
from console.errors import ConsoleError, FileProblem
from console.access.principal import Principal
from console.registry.service import RegistryService
from console.registry.records import VersionRecord
from console.storage.timestamps import local_time
from console.units import format_parameters, format_rate, format_size

REF_HELP = "NAME:VERSION, or NAME for its newest version"


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="the model registry: list, import, verify, manifests")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="every registered model version with its verified state")
    listing.add_argument("--active", action="store_true", help="hide retired versions")

    importing = sub.add_parser("import", help="register a Hugging Face folder or a GGUF file as a new version")
    importing.add_argument("path", help="the model folder or .gguf file")
    importing.add_argument("--name", help="model name (default: the folder or file name); an existing name adds a version")
    importing.add_argument("--version", help="version label (default: v1, v2, …)")
    importing.add_argument("--notes", default="", help="free text kept with the version")

    verify = sub.add_parser("verify", help="re-hash the files of one version, or of every version")
    verify.add_argument("ref", nargs="?", metavar="NAME[:VERSION]", help=f"{REF_HELP}; all active versions if left out")
    verify.add_argument("--due", action="store_true", help="only versions whose scheduled re-hash is due (for cron)")

    export = sub.add_parser("export-manifest", help="write a version's manifest (paths, sizes, SHA-256) as JSON")
    export.add_argument("ref", metavar="NAME[:VERSION]", help=REF_HELP)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")

    check = sub.add_parser("check-manifest", help="check local files against a manifest from another workstation")
    check.add_argument("manifest", help="the manifest JSON file")
    check.add_argument("--path", help="the local model folder or .gguf file (default: the manifest's source path)")

    from_manifest = sub.add_parser("import-manifest", help="register local files as a manifest's version, if they match it")
    from_manifest.add_argument("manifest", help="the manifest JSON file")
    from_manifest.add_argument("--path", help="the local model folder or .gguf file (default: the manifest's source path)")

    default = sub.add_parser("set-default", help="make a version the one loaded by default")
    default.add_argument("ref", metavar="NAME[:VERSION]", help=REF_HELP)

    retire = sub.add_parser("retire", help="retire a version: kept on record, no longer loadable")
    retire.add_argument("ref", metavar="NAME[:VERSION]", help=REF_HELP)

    history = sub.add_parser("history", help="loads and refused loads, newest first")
    history.add_argument("ref", nargs="?", metavar="NAME[:VERSION]", help=f"{REF_HELP}; every version if left out")
    history.add_argument("--limit", type=int, default=50)

    schedule = sub.add_parser("schedule", help="show or set how often every version is fully re-hashed")
    schedule.add_argument("hours", nargs="?", type=float, help="interval in hours (0: only on demand and on change)")


class ProgressPrinter:
    """One updating line on a terminal; on a pipe, only the final figure (logs stay short)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, step: HashProgress) -> None:
        finished = step.done_bytes >= step.total_bytes
        line = (
            f"[100%] hashed {format_size(step.total_bytes)} · {format_rate(step.bytes_per_second)}"
            if finished
            else f"[{step.fraction * 100:3.0f}%] hashing {step.current_file or '…'} · {format_size(step.done_bytes)} of "
            f"{format_size(step.total_bytes)} · {format_rate(step.bytes_per_second)}"
        )
        if self.live:
            print(f"\r{line[:120]:<120}", end="", file=self.stream, flush=True)
        elif finished and step.total_bytes:
            print(line, file=self.stream, flush=True)

    def done(self) -> None:
        if self.live:
            print(file=self.stream, flush=True)


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    """Each command acts for `principal` through the core's registry service, which checks its permission."""
    printer = ProgressPrinter()
    try:
        register_embedded_default(core, printer)
        return COMMANDS[args.models_command](core.registry, principal, args, printer)
    except ConsoleError as error:
        printer.done()
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        printer.done()
        print("cancelled: nothing was changed", file=sys.stderr)
        return 130


def register_embedded_default(core, printer: ProgressPrinter | None) -> None:
    """First start: the embedded model is registered by the system, whoever runs the first command."""
    from engine import ModelLoadError

    if core.embedded_default_registered():
        return
    if printer is not None:
        print("Registering the embedded default model (first start)…", file=sys.stderr)
    try:
        version = core.ensure_default_registered(printer)
    except ModelLoadError as error:  # the package is not installed: the registry works without it
        print(f"note: {error}", file=sys.stderr)
        return
    if printer is not None:
        printer.done()
        if version is not None:
            print(f"Registered {version.ref} as the default model.", file=sys.stderr)


def chat_load_target(core, model: str | None, precision: str, device: str, quiet: bool = False):
    """What `chat --model` names (`verified_loading.model_target`: a registered name wins, a path must look
    like one); no value is the registry's default (the embedded model at first)."""
    from console.registry.verified_loading import model_target

    if model:
        return model_target(core._registry, model, precision, device)  # load_version checks model:load
    register_embedded_default(core, None if quiet else ProgressPrinter())
    return core.default_load_target(precision, device)


def command_list(registry: RegistryService, principal: Principal, args, printer) -> int:
    versions = registry.versions(principal, include_retired=not args.active)
    if not versions:
        print("No model is registered. Register one with: llm-console models import PATH")
        return 0
    rows = [("", "MODEL:VERSION", "FORMAT", "SIZE", "PRECISION", "PARAMS", "STATE", "LAST CHECK", "REGISTERED")]
    for v in versions:
        rows.append((
            "*" if v.is_default else "",
            v.ref,
            v.format,
            format_size(v.total_bytes),
            v.precision or "–",
            format_parameters(v.parameters),
            state_of(v),
            f"{local_time(v.last_checked_at)} ({v.last_check_kind or '–'})",
            f"{local_time(v.registered_at)} by {v.registered_by}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("\n* the default model · verify with: llm-console models verify [NAME[:VERSION]]")
    return 0


def state_of(version: VersionRecord) -> str:
    if version.retired:
        return "retired"
    return "TAMPERED" if version.verify_state == "tampered" else "verified"


def command_import(registry: RegistryService, principal: Principal, args, printer) -> int:
    version = registry.import_model(
        principal, Path(args.path), name=args.name, version=args.version, notes=args.notes,
        progress=printer,
    )
    printer.done()
    print(
        f"Registered {version.ref}: {version.file_count} files, {format_size(version.total_bytes)}, "
        f"{version.format} {version.architecture} {version.precision}, checksum {version.checksum}"
    )
    return 0


def command_verify(registry: RegistryService, principal: Principal, args, printer) -> int:
    if args.ref:
        targets = [registry.resolve(principal, args.ref)]
    else:
        targets = registry.due_for_full_check(principal) if args.due else registry.versions(principal, include_retired=False)
    if not targets:
        print("Nothing to verify." if not args.due else "No version is due for its scheduled re-hash.")
        return 0
    failed = 0
    for version in targets:
        started = time.perf_counter()
        report = registry.verify_version(principal, version.id, force_full=True, progress=printer)
        printer.done()
        if report.ok:
            print(f"OK        {version.ref}  {version.file_count} files, {format_size(version.total_bytes)}, "
                  f"full re-hash in {time.perf_counter() - started:.1f} s")
        else:
            failed += 1
            print(f"TAMPERED  {version.ref}")
            print_problems(report.problems)
    if failed:
        print(f"\n{failed} of {len(targets)} versions failed verification; they will not load until their files are "
              "restored.", file=sys.stderr)
    return 1 if failed else 0


def print_problems(problems) -> None:
    for problem in problems:
        problem: FileProblem
        if problem.reason == "changed":
            print(f"  {problem.path}: changed\n    expected {problem.expected_sha256}\n    found    {problem.found_sha256}")
        elif problem.reason == "extra":
            print(f"  {problem.path}: not in the manifest (found {problem.found_sha256})")
        else:
            print(f"  {problem.describe()}")


def command_export_manifest(registry: RegistryService, principal: Principal, args, printer) -> int:
    version = registry.resolve(principal, args.ref)
    if args.output:
        written = registry.write_manifest(principal, version.id, Path(args.output))
        print(f"Wrote the manifest of {version.ref} ({version.file_count} files, checksum {version.checksum}) to {written}")
    else:
        print(registry.manifest_json(principal, version.id), end="")
    return 0


def command_check_manifest(registry: RegistryService, principal: Principal, args, printer) -> int:
    from console.registry.manifests import read_manifest

    manifest = read_manifest(Path(args.manifest))
    result = registry.check_manifest(principal, manifest, Path(args.path) if args.path else None, progress=printer)
    printer.done()
    origin = f" from {manifest.exported_from}" if manifest.exported_from else ""
    if result.ok:
        print(f"OK        {result.checked_path} matches {manifest.ref}{origin}: {len(manifest.files)} files, "
              f"checksum {manifest.checksum}")
        if result.registered_as is not None:
            print(f"          registered here as {result.registered_as.ref}")
        return 0
    print(f"MISMATCH  {result.checked_path} does not match {manifest.ref}{origin}")
    print_problems(result.problems)
    return 1


def command_import_manifest(registry: RegistryService, principal: Principal, args, printer) -> int:
    from console.errors import ChecksumMismatch
    from console.registry.manifests import read_manifest

    manifest = read_manifest(Path(args.manifest))
    try:
        version = registry.import_from_manifest(principal, manifest, Path(args.path) if args.path else None, printer)
    except ChecksumMismatch as error:
        printer.done()
        print(f"MISMATCH  the local files do not match {manifest.ref}; nothing was registered")
        print_problems(error.problems)
        return 1
    printer.done()
    print(f"Registered {version.ref} from the manifest: {version.file_count} files match, checksum {version.checksum}")
    return 0


def command_set_default(registry: RegistryService, principal: Principal, args, printer) -> int:
    version = registry.set_default(principal, registry.resolve(principal, args.ref).id)
    print(f"{version.ref} is now the default model.")
    return 0


def command_retire(registry: RegistryService, principal: Principal, args, printer) -> int:
    version = registry.retire(principal, registry.resolve(principal, args.ref).id)
    print(f"{version.ref} is retired: it stays on record but can no longer be loaded.")
    return 0


def command_history(registry: RegistryService, principal: Principal, args, printer) -> int:
    version_id = registry.resolve(principal, args.ref).id if args.ref else None
    events = registry.load_history(principal, version_id, limit=args.limit)
    if not events:
        print("No loads recorded yet.")
        return 0
    for event in events:
        seconds = f" in {event.load_seconds:.1f} s" if event.load_seconds is not None else ""
        where = " ".join(part for part in (event.precision, event.device) if part)
        print(f"{local_time(event.loaded_at)}  {event.outcome:<8} {event.version_ref}  {where}{seconds}  by {event.loaded_by}")
        if event.detail and event.outcome != "loaded":
            print(f"    {event.detail}")
    return 0


def command_schedule(registry: RegistryService, principal: Principal, args, printer) -> int:
    if args.hours is not None:
        registry.set_verify_interval(principal, args.hours)
    hours = registry.verify_interval_hours(principal)
    if hours > 0:
        print(f"Every version is fully re-hashed when its last full check is older than {hours:g} h "
              "(at its next load, in the Models tab, or by `llm-console models verify --due`).")
    else:
        print("Scheduled re-hashing is off: versions are re-hashed on demand and when a file's size or time changes.")
    return 0


COMMANDS: dict[str, Callable[[RegistryService, Principal, argparse.Namespace, ProgressPrinter], int]] = {
    "list": command_list,
    "import": command_import,
    "verify": command_verify,
    "export-manifest": command_export_manifest,
    "check-manifest": command_check_manifest,
    "import-manifest": command_import_manifest,
    "set-default": command_set_default,
    "retire": command_retire,
    "history": command_history,
    "schedule": command_schedule,
}
