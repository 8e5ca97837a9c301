"""`llm-console lab …`: the tuning lab for admins on SSH — sweep, resume, list, show, compare, export, apply,
and the memory estimate of a load — on the same service as the Lab tab (`ConsoleCore.lab`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from console.access.principal import Principal
from console.errors import ConsoleError
from console.lab.analysis import Sla
from console.lab.export import compare_table, sweep_csv, sweep_json, sweep_table
from console.lab.load_memory import describe_estimate
from console.lab.machine import machine_line
from console.lab.plan import SweepPlan
from console.lab.sweep_runner import SweepCancelled, SweepProgress
from console.units import format_size
from engine import EngineError
from engine.weights.devices import DEVICES, PRECISIONS


def add_parser(commands) -> None:
    lab = commands.add_parser("lab", help="the tuning lab: sweep precision × batch size × concurrency, answer an SLA, apply")
    sub = lab.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")

    sweep = sub.add_parser("sweep", help="measure every combination and store it (resumable)")
    sweep.add_argument("--model", help="registered NAME[:VERSION], GGUF file or HF folder (default: the default model)")
    sweep.add_argument("--device", choices=DEVICES, default="auto")
    sweep.add_argument("--precisions", help=f"comma-separated, of {','.join(p for p in PRECISIONS if p != 'auto')} "
                                            "(default: those the device supports)")
    sweep.add_argument("--batch-sizes", help="comma-separated max batch sizes (default: powers of two, capped by memory)")
    sweep.add_argument("--concurrency", help="comma-separated numbers of concurrent users (default: 1,2,4,8,16 on a CPU)")
    sweep.add_argument("--max-wait-ms", help="comma-separated max waits in ms (default 5)")
    sweep.add_argument("--repetitions", type=int, default=3, help="interleaved repetitions per point, 3 or more")
    sweep.add_argument("--new-tokens", type=int, default=32, help="tokens generated per request (default 32)")
    sweep.add_argument("--compile", choices=("off", "on", "auto"), default="off", help="torch.compile for every load")
    sweep.add_argument("--memory-limit-mb", type=float, help="skip points whose estimate exceeds this")

    resume = sub.add_parser("resume", help="continue a cancelled or crashed sweep where it stopped")
    resume.add_argument("sweep", type=int)

    listing = sub.add_parser("list", help="stored sweeps, newest first")
    listing.add_argument("--model", help="only this registered NAME[:VERSION] or path")

    show = sub.add_parser("show", help="a sweep's table and the answers within an SLA")
    show.add_argument("sweep", type=int)
    _add_sla_arguments(show)

    compare = sub.add_parser("compare", help="two sweeps side by side (two model versions, or two machines)")
    compare.add_argument("a", type=int)
    compare.add_argument("b", type=int)

    export = sub.add_parser("export", help="write a sweep as CSV or AIPerf-like JSON")
    export.add_argument("sweep", type=int)
    export.add_argument("--format", choices=("csv", "json"), default="json")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    _add_sla_arguments(export)

    apply = sub.add_parser("apply", help="save the best configuration within the SLA as the model version's defaults")
    apply.add_argument("sweep", type=int)
    _add_sla_arguments(apply)

    loads = sub.add_parser("loads", help="recent loads: the memory estimate beside what each measured")
    loads.add_argument("--limit", type=int, default=20)

    estimate = sub.add_parser("estimate", help="the memory a load needs, itemised, against what is free")
    estimate.add_argument("--model", help="registered NAME[:VERSION], GGUF file or HF folder (default: the default model)")
    estimate.add_argument("--precision", choices=PRECISIONS, default="auto")
    estimate.add_argument("--device", choices=DEVICES, default="auto")
    estimate.add_argument("--sequences", type=int, help="concurrent sequences (default: the max batch size)")
    estimate.add_argument("--context", type=int, help="tokens per sequence (default: the window, at most 4,096)")


def _add_sla_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ttft-p99-ms", type=float, help="SLA: time to first token, p99")
    parser.add_argument("--itl-p99-ms", type=float, help="SLA: inter-token latency, p99")
    parser.add_argument("--memory-mb", type=float, help="SLA: peak memory")
    parser.add_argument("--perplexity-increase", type=float, metavar="PCT", help="SLA: perplexity increase over the widest precision, %%")


def sla_of(args) -> Sla:
    return Sla(
        ttft_p99_s=args.ttft_p99_ms / 1000 if args.ttft_p99_ms is not None else None,
        itl_p99_s=args.itl_p99_ms / 1000 if args.itl_p99_ms is not None else None,
        memory_bytes=int(args.memory_mb * 2**20) if args.memory_mb is not None else None,
        perplexity_increase_pct=args.perplexity_increase,
    )


def _numbers(text: str | None, kind, name: str):
    if text is None:
        return None
    try:
        values = tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConsoleError(f"--{name} takes numbers separated by commas (got {text!r}).") from None
    if not values:
        raise ConsoleError(f"--{name} needs at least one value.")
    return values


def _plan(args, core, target) -> SweepPlan:
    plan = core.lab.default_plan(target, args.device, new_tokens=args.new_tokens, repetitions=args.repetitions)
    changes = {
        "precisions": tuple(p.strip() for p in args.precisions.split(",")) if args.precisions else plan.precisions,
        "batch_sizes": _numbers(args.batch_sizes, int, "batch-sizes") or plan.batch_sizes,
        "concurrency": _numbers(args.concurrency, int, "concurrency") or plan.concurrency,
        "max_wait_ms": _numbers(args.max_wait_ms, float, "max-wait-ms") or plan.max_wait_ms,
        "compile": args.compile,
        "memory_limit_bytes": int(args.memory_limit_mb * 2**20) if args.memory_limit_mb else None,
        # the default lists skip batch caps that cannot bind or starve most users; lists given by hand are
        # measured as given
        "skip_unbound_batches": not (args.batch_sizes or args.concurrency),
        "skip_starved_batches": not (args.batch_sizes or args.concurrency),
    }
    return replace(plan, **changes).validate()


def _signed_size(count: int | None) -> str:
    """A load that replaced a bigger model shrinks the process: say so rather than print negative bytes."""
    if count is None or count >= 0:
        return format_size(count)
    return f"-{format_size(-count)}"


def _printer():
    def report(step: SweepProgress) -> None:
        eta = f" · ETA {step.eta_s:.0f} s" if step.eta_s is not None else ""
        print(f"[lab {step.done}/{step.total}{eta}] {step.message}", file=sys.stderr, flush=True)
    return report


def _run(core, principal, sweep_id: int) -> int:
    try:
        core.lab.run(principal, sweep_id, _printer())
    except (SweepCancelled, KeyboardInterrupt):
        print(f"[lab] stopped; finished points are kept: llm-console lab resume {sweep_id}", file=sys.stderr)
        return 130
    sweep, points, precisions = core.lab.sweep(principal, sweep_id)
    print(sweep_table(sweep, points, precisions, core.lab.answers(principal, sweep_id)))
    return 0


def run(args: argparse.Namespace, core, principal: Principal) -> int:
    from console.cli.models import chat_load_target

    command = args.lab_command
    try:
        if command == "sweep":
            target = core.lab.target(chat_load_target(core, args.model, "auto", args.device, quiet=True))
            plan = _plan(args, core, target)
            sweep = core.lab.start(principal, target, plan, args.device)
            print(f"[lab] sweep {sweep.id}: {target.model_name} on {sweep.device}, {len(plan.points())} points × "
                  f"{plan.repetitions} repetitions", file=sys.stderr)
            return _run(core, principal, sweep.id)
        if command == "resume":
            return _run(core, principal, args.sweep)
        if command == "list":
            key = core.lab.target(chat_load_target(core, args.model, "auto", "auto", quiet=True)).model_key if args.model else None
            sweeps = core.lab.sweeps(principal, key)
            if not sweeps:
                print("No sweep is stored. Run one with: llm-console lab sweep")
                return 0
            for s in sweeps:
                print(f"{s.id:>4}  {s.state:<9} {s.model_name:<36} {s.device:<10} {s.started_at}  {s.run_by:<10} "
                      f"{machine_line(s.machine)}")
            return 0
        if command == "show":
            sweep, points, precisions = core.lab.sweep(principal, args.sweep)
            print(sweep_table(sweep, points, precisions, core.lab.answers(principal, args.sweep, sla_of(args))))
            return 0
        if command == "compare":
            print(compare_table(core.lab.sweep(principal, args.a), core.lab.sweep(principal, args.b)))
            return 0
        if command == "export":
            sweep, points, precisions = core.lab.sweep(principal, args.sweep)
            writer = sweep_csv if args.format == "csv" else sweep_json
            text = writer(sweep, points, precisions, sla_of(args))
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
                print(f"[lab] wrote {args.output}", file=sys.stderr)
            else:
                sys.stdout.write(text)
            return 0
        if command == "apply":
            outcome = core.lab.apply(principal, args.sweep, sla_of(args), save_default=True, live=False)
            r = outcome.recommendation
            print(f"Saved for {r.model_key} on {r.device}: precision {r.precision}, max batch size {r.max_batch_size}, "
                  f"max wait {r.max_wait_ms:g} ms. Loads at precision auto use it from now on.")
            return 0
        if command == "loads":
            rows = core.load_memory_records(principal, args.limit)
            if not rows:
                print("No load is recorded yet.")
                return 0
            print(f"{'at':<26} {'model':<30} {'precision':<9} {'device':<6} {'weights est.':>12} {'measured':>10} "
                  f"{'diff':>7} {'load RSS/CUDA':>13}")
            for row in rows:
                estimated, measured = row["estimated_weight_bytes"], row["measured_weight_bytes"]
                difference = f"{(estimated / measured - 1) * 100:+.1f}%" if measured else "–"
                print(f"{row['at']:<26} {row['model'][:30]:<30} {row['precision']:<9} {row['device']:<6} "
                      f"{format_size(estimated):>12} {format_size(measured):>10} {difference:>7} "
                      f"{_signed_size(row['measured_load_bytes']):>13}")
            return 0
        if command == "estimate":
            load_target = chat_load_target(core, args.model, args.precision, args.device, quiet=True)
            estimate = core.estimate_load(load_target, args.sequences, args.context)
            print(f"{estimate.precision} on {estimate.device}: {describe_estimate(estimate)}"
                  + ("" if estimate.fits else " — will not fit"))
            return 0 if estimate.fits else 1
    except (ConsoleError, EngineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    raise AssertionError(command)
