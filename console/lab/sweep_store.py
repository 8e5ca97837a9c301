"""Where sweeps live: `lab_sweeps` (plan, machine, state) and their rows in `benchmark_results` — one per
repetition, one per finished or skipped point, one per precision (weights, perplexity) — and the
recommendations saved per model version and device (`lab_recommendations`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from console.errors import LabError
from console.lab.measurement import Figures, PointSummary
from console.lab.plan import PlannedPoint, SweepPlan
from console.storage.database import AppDatabase
from console.storage.timestamps import now_iso

REPETITION, POINT, SKIPPED, PRECISION = "lab-repetition", "lab-point", "lab-skipped", "lab-precision"


@dataclass(frozen=True)
class SweepRecord:
    id: int
    version_id: int | None
    model_name: str
    model_path: str
    model_key: str
    device: str
    machine: dict
    plan: SweepPlan
    state: str
    error: str | None
    started_at: str
    finished_at: str | None
    run_by: str

    @property
    def resumable(self) -> bool:
        return self.state in ("running", "cancelled", "failed")


@dataclass(frozen=True)
class PrecisionRecord:
    precision: str
    weight_bytes: int | None
    estimated_weight_bytes: int | None
    perplexity: float | None
    load_seconds: float | None
    error: str | None = None  # the load failed: its points were skipped


@dataclass(frozen=True)
class PointRecord:
    point: PlannedPoint
    summary: PointSummary | None  # None when skipped
    skip_reason: str | None = None

    @property
    def measured(self) -> bool:
        return self.summary is not None


@dataclass(frozen=True)
class Recommendation:
    model_key: str
    device: str
    precision: str
    max_batch_size: int
    max_wait_ms: float
    sweep_id: int | None
    saved_by: str
    saved_at: str


class SweepStore:
    def __init__(self, database: AppDatabase):
        self.database = database

    # --- sweeps ------------------------------------------------------------------------------------------
    def create(self, version_id: int | None, model_name: str, model_path: str, model_key: str, device: str,
               machine: dict, plan: SweepPlan, run_by: str) -> SweepRecord:
        with self.database.write() as db:
            sweep_id = db["lab_sweeps"].insert({
                "version_id": version_id, "model_name": model_name, "model_path": model_path, "model_key": model_key,
                "device": device, "machine_json": json.dumps(machine), "plan_json": plan.to_json(), "state": "running",
                "started_at": now_iso(), "run_by": run_by,
            }).last_pk
        return self.sweep(sweep_id)

    def set_state(self, sweep_id: int, state: str, error: str | None = None) -> None:
        with self.database.write() as db:
            db["lab_sweeps"].update(sweep_id, {"state": state, "error": error,
                                               "finished_at": now_iso() if state != "running" else None})

    def sweep(self, sweep_id: int) -> SweepRecord:
        with self.database.read() as db:
            rows = list(db.query("select * from lab_sweeps where id = ?", [sweep_id]))
        if not rows:
            raise LabError(f"No sweep number {sweep_id}. `llm-console lab list` shows the stored sweeps.")
        return _sweep(rows[0])

    def sweeps(self, model_key: str | None = None) -> list[SweepRecord]:
        where, params = ("where model_key = ?", [model_key]) if model_key else ("", [])
        with self.database.read() as db:
            return [_sweep(row) for row in db.query(f"select * from lab_sweeps {where} order by id desc", params)]

    # --- rows --------------------------------------------------------------------------------------------
    def _insert(self, sweep: SweepRecord, kind: str, point: PlannedPoint | None, precision: str, details: dict,
                figures: Figures | None = None, repetition: int | None = None) -> None:
        row = {
            "version_id": sweep.version_id, "run_at": now_iso(), "run_by": sweep.run_by, "kind": kind,
            "precision": precision, "device": sweep.device, "sweep_id": sweep.id,
            "details_json": json.dumps(details), "repetition": repetition,
        }
        if point is not None:
            row.update(point_key=point.key, batch_size=point.batch_size, concurrency=point.concurrency,
                       max_wait_ms=point.max_wait_ms)
        if figures is not None:
            row.update(prompt_tokens=figures.prompt_tokens, generated_tokens=figures.generated_tokens,
                       tokens_per_second=figures.output_tokens_per_s, ttft_p50_s=figures.ttft_p50_s,
                       latency_p50_s=figures.latency_p50_s, peak_memory_bytes=figures.peak_memory_bytes)
        with self.database.write() as db:
            db["benchmark_results"].insert(row)

    def save_repetition(self, sweep: SweepRecord, point: PlannedPoint, repetition: int, figures: Figures) -> None:
        self._insert(sweep, REPETITION, point, point.precision, figures.to_dict(), figures, repetition)

    def save_point(self, sweep: SweepRecord, point: PlannedPoint, summary: PointSummary) -> None:
        details = {"median": summary.median.to_dict(), "throughput_cv": summary.throughput_cv,
                   "unstable": summary.unstable}
        self._insert(sweep, POINT, point, point.precision, details, summary.median, summary.repetitions)

    def skip_point(self, sweep: SweepRecord, point: PlannedPoint, reason: str) -> None:
        self._insert(sweep, SKIPPED, point, point.precision, {"reason": reason})

    def save_precision(self, sweep: SweepRecord, record: PrecisionRecord) -> None:
        self._insert(sweep, PRECISION, None, record.precision, {
            "weight_bytes": record.weight_bytes, "estimated_weight_bytes": record.estimated_weight_bytes,
            "perplexity": record.perplexity, "load_seconds": record.load_seconds, "error": record.error})

    def repetitions(self, sweep_id: int, point_key: str) -> list[Figures]:
        with self.database.read() as db:
            rows = db.query("select details_json from benchmark_results where sweep_id = ? and kind = ? and point_key = ? "
                            "order by repetition", [sweep_id, REPETITION, point_key])
            return [Figures.from_dict(json.loads(row["details_json"])) for row in rows]

    def repetition_counts(self, sweep_id: int) -> dict[str, int]:
        with self.database.read() as db:
            rows = db.query("select point_key, count(*) as n from benchmark_results where sweep_id = ? and kind = ? "
                            "group by point_key", [sweep_id, REPETITION])
            return {row["point_key"]: row["n"] for row in rows}

    def points(self, sweep_id: int) -> list[PointRecord]:
        """Finished and skipped points, in the order they were stored."""
        with self.database.read() as db:
            rows = list(db.query("select * from benchmark_results where sweep_id = ? and kind in (?, ?) order by id",
                                 [sweep_id, POINT, SKIPPED]))
        records = []
        for row in rows:
            point = PlannedPoint(row["precision"], row["batch_size"], row["concurrency"], row["max_wait_ms"])
            details = json.loads(row["details_json"])
            if row["kind"] == SKIPPED:
                records.append(PointRecord(point, None, details["reason"]))
            else:
                summary = PointSummary(Figures.from_dict(details["median"]), row["repetition"], details["throughput_cv"])
                records.append(PointRecord(point, summary))
        return records

    def precisions(self, sweep_id: int) -> dict[str, PrecisionRecord]:
        with self.database.read() as db:
            rows = list(db.query("select precision, details_json from benchmark_results where sweep_id = ? and kind = ? "
                                 "order by id", [sweep_id, PRECISION]))
        return {row["precision"]: PrecisionRecord(row["precision"], **json.loads(row["details_json"])) for row in rows}

    # --- recommendations ---------------------------------------------------------------------------------
    def save_recommendation(self, recommendation: Recommendation) -> None:
        with self.database.write() as db:
            db.execute("delete from lab_recommendations where model_key = ? and device = ?",
                       [recommendation.model_key, recommendation.device])
            db["lab_recommendations"].insert({
                "model_key": recommendation.model_key, "device": recommendation.device,
                "precision": recommendation.precision, "max_batch_size": recommendation.max_batch_size,
                "max_wait_ms": recommendation.max_wait_ms, "sweep_id": recommendation.sweep_id,
                "saved_by": recommendation.saved_by, "saved_at": recommendation.saved_at,
            })

    def recommendation(self, model_key: str, device: str) -> Recommendation | None:
        with self.database.read() as db:
            rows = list(db.query("select * from lab_recommendations where model_key = ? and device = ?",
                                 [model_key, device]))
        if not rows:
            return None
        row = rows[0]
        return Recommendation(row["model_key"], row["device"], row["precision"], row["max_batch_size"],
                              row["max_wait_ms"], row["sweep_id"], row["saved_by"], row["saved_at"])


def _sweep(row: dict) -> SweepRecord:
    return SweepRecord(
        id=row["id"], version_id=row["version_id"], model_name=row["model_name"], model_path=row["model_path"] or "",
        model_key=row["model_key"], device=row["device"], machine=json.loads(row["machine_json"]),
        plan=SweepPlan.from_json(row["plan_json"]), state=row["state"], error=row["error"],
        started_at=row["started_at"], finished_at=row["finished_at"], run_by=row["run_by"] or "",
    )
