"""A sweep written out: CSV (one row per point) and an AIPerf-like JSON (per-point metrics with units, then
`best_configurations` and `pareto_optimal`), plus the table `lab show` prints."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict

from console.lab.analysis import Answers, Judged, Sla, answer
from console.lab.machine import machine_line
from console.lab.sweep_store import PointRecord, PrecisionRecord, SweepRecord
from console.units import format_size

CSV_FIGURES = ("output_tokens_per_s", "tokens_per_s_per_user", "requests_per_s", "ttft_p50_s", "ttft_p90_s",
               "ttft_p99_s", "itl_p50_s", "itl_p99_s", "latency_p50_s", "latency_p99_s", "peak_memory_bytes",
               "prompt_tokens", "generated_tokens", "errors")


def sweep_csv(sweep: SweepRecord, points: list[PointRecord], precisions: dict[str, PrecisionRecord], sla: Sla = Sla()) -> str:
    judged = {j.record.point.key: j for j in answer(points, precisions, sla).judged}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sweep", "model", "device", "precision", "batch_size", "concurrency", "max_wait_ms", "repetitions",
                     *CSV_FIGURES, "throughput_cv", "unstable", "weight_bytes", "perplexity", "perplexity_increase_pct",
                     "meets_sla", "skip_reason"])
    for record in points:
        p = record.point
        precision = precisions.get(p.precision)
        head = [sweep.id, sweep.model_name, sweep.device, p.precision, p.batch_size, p.concurrency, p.max_wait_ms]
        tail = [precision.weight_bytes if precision else "", precision.perplexity if precision else ""]
        if record.summary is None:
            writer.writerow(head + [0] + [""] * (len(CSV_FIGURES) + 2) + tail + ["", "", record.skip_reason])
            continue
        figures = record.summary.median.to_dict()
        j = judged[p.key]
        writer.writerow(head + [record.summary.repetitions] + [figures[name] for name in CSV_FIGURES]
                        + [round(record.summary.throughput_cv, 4), record.summary.unstable] + tail
                        + ["" if j.perplexity_increase_pct is None else round(j.perplexity_increase_pct, 3), j.meets, ""])
    return out.getvalue()


def _config(j: Judged) -> dict:
    p = j.record.point
    return {"precision": p.precision, "max_batch_size": p.batch_size, "concurrency": p.concurrency,
            "max_wait_ms": p.max_wait_ms}


def _metrics(j: Judged) -> dict:
    f = j.figures
    ms = lambda seconds: round(seconds * 1000, 3)  # noqa: E731
    return {
        "output_token_throughput": {"unit": "tokens/sec", "avg": round(f.output_tokens_per_s, 3)},
        "output_token_throughput_per_user": {"unit": "tokens/sec/user", "avg": round(f.tokens_per_s_per_user, 3)},
        "request_throughput": {"unit": "requests/sec", "avg": round(f.requests_per_s, 4)},
        "time_to_first_token": {"unit": "ms", "p50": ms(f.ttft_p50_s), "p90": ms(f.ttft_p90_s), "p99": ms(f.ttft_p99_s)},
        "inter_token_latency": {"unit": "ms", "p50": ms(f.itl_p50_s), "p99": ms(f.itl_p99_s)},
        "request_latency": {"unit": "ms", "p50": ms(f.latency_p50_s), "p99": ms(f.latency_p99_s)},
        "peak_memory": {"unit": "bytes", "max": f.peak_memory_bytes},
        "error_request_count": {"unit": "requests", "total": f.errors},
    }


def sweep_json(sweep: SweepRecord, points: list[PointRecord], precisions: dict[str, PrecisionRecord], sla: Sla = Sla()) -> str:
    answers = answer(points, precisions, sla)
    pareto = {j.record.point.key for j in answers.pareto}
    records = [{
        "config": _config(j), "metrics": _metrics(j), "repetitions": j.record.summary.repetitions,
        "coefficient_of_variation": round(j.record.summary.throughput_cv, 4), "unstable": j.record.summary.unstable,
        "perplexity": j.perplexity, "meets_sla": j.meets, "sla_misses": list(j.misses), "pareto_optimal": j.record.point.key in pareto,
    } for j in answers.judged]
    skipped = [{"config": {"precision": r.point.precision, "max_batch_size": r.point.batch_size,
                           "concurrency": r.point.concurrency, "max_wait_ms": r.point.max_wait_ms},
                "reason": r.skip_reason} for r in points if r.summary is None]
    document = {
        "sweep": {"id": sweep.id, "model": sweep.model_name, "model_key": sweep.model_key, "device": sweep.device,
                  "state": sweep.state, "started_at": sweep.started_at, "finished_at": sweep.finished_at,
                  "run_by": sweep.run_by, "plan": asdict(sweep.plan)},
        "machine": sweep.machine,
        "sla": asdict(sla),
        "precisions": {name: asdict(record) for name, record in precisions.items()},
        "records": records,
        "skipped": skipped,
        "best_configurations": [{"config": _config(j), "metrics": _metrics(j)} for j in answers.top],
        "pareto_optimal": [{"config": _config(j), "metrics": _metrics(j)} for j in answers.pareto],
    }
    return json.dumps(document, indent=2)


def sweep_table(sweep: SweepRecord, points: list[PointRecord], precisions: dict[str, PrecisionRecord],
                answers: Answers) -> str:
    """What `lab show` prints: the sweep, each precision's memory and perplexity, every point, the answers."""
    judged = {j.record.point.key: j for j in answers.judged}
    lines = [f"Sweep {sweep.id} · {sweep.model_name} · {sweep.device} · {sweep.state} · started {sweep.started_at} by {sweep.run_by}",
             f"Machine: {machine_line(sweep.machine)}",
             f"Plan: {sweep.plan.repetitions} repetitions per point, {sweep.plan.new_tokens} new tokens per request", ""]
    if precisions:
        lines.append(f"{'precision':<10} {'weights':>10} {'estimated':>10} {'perplexity':>11} {'load':>7}")
        for record in precisions.values():
            if record.error:
                lines.append(f"{record.precision:<10} not loaded: {record.error}")
                continue
            lines.append(f"{record.precision:<10} {format_size(record.weight_bytes):>10} "
                         f"{format_size(record.estimated_weight_bytes):>10} {record.perplexity:>11.3f} {record.load_seconds:>6.1f}s")
        lines.append("")
    lines.append(f"{'precision':<9} {'batch':>5} {'users':>5} {'tok/s':>8} {'tok/s/user':>10} {'req/s':>6} "
                 f"{'TTFT p50':>8} {'TTFT p99':>8} {'ITL p99':>8} {'e2e p99':>8} {'peak mem':>9} {'CV':>5}  notes")
    for record in points:
        p = record.point
        if record.summary is None:
            lines.append(f"{p.precision:<9} {p.batch_size:>5} {p.concurrency:>5}  skipped: {record.skip_reason}")
            continue
        f, j = record.summary.median, judged[p.key]
        notes = [] if j.meets else ["misses SLA"]
        if record.summary.unstable:
            notes.append("unstable")
        if f.errors:
            notes.append(f"{f.errors} errors")
        lines.append(
            f"{p.precision:<9} {p.batch_size:>5} {p.concurrency:>5} {f.output_tokens_per_s:>8.1f} {f.tokens_per_s_per_user:>10.1f} "
            f"{f.requests_per_s:>6.2f} {f.ttft_p50_s * 1000:>6.0f}ms {f.ttft_p99_s * 1000:>6.0f}ms {f.itl_p99_s * 1000:>6.0f}ms "
            f"{f.latency_p99_s:>7.2f}s {format_size(f.peak_memory_bytes):>9} {record.summary.throughput_cv * 100:>4.0f}%  "
            + ", ".join(notes))
    lines += ["", answers.summary()]
    if answers.pareto:
        lines.append("Pareto front (tok/s per user vs total tok/s): " + ", ".join(
            f"{j.label} ({j.figures.tokens_per_s_per_user:.1f}/user, {j.figures.output_tokens_per_s:.1f} total)" for j in answers.pareto))
    return "\n".join(lines)


def compare_table(a: tuple, b: tuple) -> str:
    """Two sweeps (each `LabService.sweep`'s triple) point by point: the same configuration on two model
    versions or two machines, with B's figures as a ratio to A's."""
    (sweep_a, points_a, precisions_a), (sweep_b, points_b, precisions_b) = a, b
    lines = [f"A: sweep {sweep_a.id} · {sweep_a.model_name} · {sweep_a.device} · {machine_line(sweep_a.machine)}",
             f"B: sweep {sweep_b.id} · {sweep_b.model_name} · {sweep_b.device} · {machine_line(sweep_b.machine)}", ""]
    for name in sorted(set(precisions_a) | set(precisions_b)):
        pa, pb = precisions_a.get(name), precisions_b.get(name)
        ppl = lambda r: f"{r.perplexity:.3f}" if r and r.perplexity else "–"  # noqa: E731
        lines.append(f"{name:<6} weights {format_size(pa.weight_bytes if pa else None):>9} / "
                     f"{format_size(pb.weight_bytes if pb else None):>9}   perplexity {ppl(pa)} / {ppl(pb)}")
    lines += ["", f"{'point':<26} {'tok/s A':>8} {'tok/s B':>8} {'B/A':>6} {'TTFT p99 A':>10} {'TTFT p99 B':>10} "
                  f"{'e2e p99 A':>9} {'e2e p99 B':>9}"]
    measured_b = {r.point.key: r for r in points_b if r.measured}
    shared = 0
    for record in points_a:
        other = measured_b.get(record.point.key)
        if not record.measured or other is None:
            continue
        shared += 1
        fa, fb = record.summary.median, other.summary.median
        ratio = fb.output_tokens_per_s / fa.output_tokens_per_s if fa.output_tokens_per_s else float("nan")
        lines.append(f"{record.point.label:<26} {fa.output_tokens_per_s:>8.1f} {fb.output_tokens_per_s:>8.1f} {ratio:>5.2f}x "
                     f"{fa.ttft_p99_s * 1000:>8.0f}ms {fb.ttft_p99_s * 1000:>8.0f}ms {fa.latency_p99_s:>8.2f}s {fb.latency_p99_s:>8.2f}s")
    if not shared:
        lines.append("(no configuration was measured in both sweeps)")
    for label, (sweep, points, precisions) in (("A", a), ("B", b)):
        lines.append(f"{label}: " + answer(points, precisions).summary())
    return "\n".join(lines)
