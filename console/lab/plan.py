"""What a sweep measures: the Cartesian product of precisions × max batch sizes × concurrency levels × max
waits, each point repeated, and the points a sweep need not run (a batch cap that cannot bind, or one that
leaves most users queued)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from console.errors import LabError
from engine.weights.devices import PRECISIONS, resolve_device

PROMPT_TOKENS_PLANNED = 64  # the bench prompts with their chat template stay under this
MIN_REPETITIONS = 3


@dataclass(frozen=True)
class PlannedPoint:
    precision: str
    batch_size: int
    concurrency: int
    max_wait_ms: float

    @property
    def key(self) -> str:
        return f"{self.precision}/b{self.batch_size}/c{self.concurrency}/w{self.max_wait_ms:g}"

    @property
    def label(self) -> str:
        return f"{self.precision} · batch {self.batch_size} · {self.concurrency} users"


@dataclass(frozen=True)
class SweepPlan:
    precisions: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    concurrency: tuple[int, ...]
    max_wait_ms: tuple[float, ...] = (5.0,)
    repetitions: int = MIN_REPETITIONS
    new_tokens: int = 32
    compile: str = "off"  # the compile mode of every load of the sweep: off, on or auto
    # Skip a max batch size above the concurrency when a smaller one already covers every user: both run
    # the same batches.
    skip_unbound_batches: bool = False
    # Skip a max batch size under half the users: most of them wait in the queue for the whole run, so the
    # point's time to first token is the queue's and its throughput the small batch's (the default sweep).
    skip_starved_batches: bool = False
    memory_limit_bytes: int | None = None  # the admin's cap; points needing more are skipped

    def validate(self) -> "SweepPlan":
        problems = []
        unknown = [p for p in self.precisions if p not in PRECISIONS or p == "auto"]
        if not self.precisions or unknown:
            problems.append(f"precisions must be some of {', '.join(p for p in PRECISIONS if p != 'auto')}"
                            + (f" (got {', '.join(unknown)})" if unknown else ""))
        for name, values in (("batch sizes", self.batch_sizes), ("concurrency levels", self.concurrency)):
            if not values or any(int(v) < 1 for v in values):
                problems.append(f"{name} must be whole numbers of 1 or more")
        if any(not 0 <= w <= 200 for w in self.max_wait_ms) or not self.max_wait_ms:
            problems.append("max waits must be 0 to 200 ms")
        if self.repetitions < MIN_REPETITIONS:
            problems.append(f"each point needs at least {MIN_REPETITIONS} repetitions for a median and its spread "
                            f"(got {self.repetitions})")
        if self.new_tokens < 2:
            problems.append("each request needs at least 2 new tokens (inter-token latency needs two)")
        if self.compile not in ("off", "on", "auto"):
            problems.append("compile must be off, on or auto")
        if problems:
            raise LabError("The sweep cannot run: " + "; ".join(problems) + ".")
        return self

    @property
    def context_tokens(self) -> int:
        """Tokens each sequence holds at its end: what the KV cache must keep per user."""
        return PROMPT_TOKENS_PLANNED + self.new_tokens

    def points(self) -> list[PlannedPoint]:
        """Every point, precision by precision (one load each), in the order repetitions visit them."""
        return [PlannedPoint(p, b, c, w) for p in self.precisions for w in self.max_wait_ms
                for c in self.concurrency for b in self.batch_sizes]

    def skip_reason(self, point: PlannedPoint) -> str | None:
        """Why the sweep need not measure a point (its batch cap never binds, or starves most users), or None."""
        if self.skip_starved_batches and point.batch_size * 2 < point.concurrency:
            return (f"max batch size {point.batch_size} serves under half of {point.concurrency} users: the rest "
                    f"wait in the queue the whole run (name the batch sizes to measure it)")
        if not self.skip_unbound_batches or point.batch_size <= point.concurrency:
            return None
        covering = min((b for b in self.batch_sizes if b >= point.concurrency), default=point.batch_size)
        if point.batch_size == covering:
            return None
        return (f"max batch size {point.batch_size} cannot bind with {point.concurrency} users: "
                f"batch {covering} already runs them all at once")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SweepPlan":
        data = json.loads(text)
        for name in ("precisions", "batch_sizes", "concurrency", "max_wait_ms"):
            data[name] = tuple(data[name])
        return cls(**data)


def supported_precisions(device: str) -> tuple[str, ...]:
    """The precisions worth sweeping on the device: fp16 on a CPU is emulated (slow) and left out by default."""
    import torch

    if resolve_device(device).type == "cuda":
        half = ("bf16",) if torch.cuda.is_bf16_supported() else ("fp16",)
        return ("fp32", *half, "int8", "int4")
    return ("fp32", "bf16", "int8", "int4")


def powers_of_two(low: int, high: int) -> tuple[int, ...]:
    values, value = [], low
    while value <= high:
        values.append(value)
        value *= 2
    return tuple(values)


@dataclass(frozen=True)
class DefaultLimits:
    """The default sweep's ranges per device kind: a CPU sweep fits in minutes, a GPU one goes further."""

    max_batch_size: int = 16
    max_concurrency: int = 16
    min_batch_size: int = 2


DEFAULT_LIMITS = {"cpu": DefaultLimits(), "cuda": DefaultLimits(max_batch_size=128, max_concurrency=128)}


def default_plan(device: str = "auto", max_batch_by_memory: int | None = None, new_tokens: int = 32,
                 repetitions: int = MIN_REPETITIONS) -> SweepPlan:
    """Powers of two for batch sizes and users, the device's precisions; batch sizes capped where the memory
    estimate says the KV cache would not fit (`max_batch_by_memory`)."""
    limits = DEFAULT_LIMITS[resolve_device(device).type]
    top = limits.max_batch_size if max_batch_by_memory is None else max(1, min(limits.max_batch_size, max_batch_by_memory))
    batches = powers_of_two(min(limits.min_batch_size, top), top)
    return SweepPlan(
        precisions=supported_precisions(device),
        batch_sizes=batches,
        concurrency=powers_of_two(1, limits.max_concurrency),
        repetitions=repetitions,
        new_tokens=new_tokens,
        skip_unbound_batches=True,
        skip_starved_batches=True,
    ).validate()
