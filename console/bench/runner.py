"""`llm-console bench`: a fixed workload at several concurrency levels, with baselines measured in the same run.

Engine figures: output tokens/s, time to first token and end-to-end latency p50/p99, peak memory, and the
prefill speed of long prompts (`prefill.py`). Baselines on the same model and prompts: Hugging Face `generate`
one request at a time, an HF static batch, and llama.cpp on the GGUF file when `llama-cpp-python` is installed
(one stream, batched decode at each level, and prefill). Every engine figure is also printed as a ratio to
each baseline, so the numbers compare like with like on this machine.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import torch

from console.bench.continuous_batching_baseline import continuous_batching_baselines
from console.bench.prefill import PrefillRun, fitting_lengths, measure_engine_prefill, prompts_for
from engine import GenerationRequest, InferenceEngine, SamplingParams
from engine.metrics import percentile

PROMPTS = (
    "Write a short story about a robot who learns to paint.",
    "Explain how a refrigerator works to a ten-year-old.",
    "List five tips for writing clear technical documentation.",
    "Describe the water cycle in a few sentences.",
    "What are the advantages of running software on your own hardware?",
    "Summarise the plot of a detective novel you would like to read.",
    "Give a recipe for a simple vegetable soup.",
    "Why do leaves change colour in autumn?",
)


@dataclass
class EngineRun:
    concurrency: int
    output_tokens_per_s: float
    ttft_p50_s: float
    ttft_p99_s: float
    latency_p50_s: float
    latency_p99_s: float
    peak_memory_bytes: int
    ratios: dict[str, float] = field(default_factory=dict)


@dataclass
class BaselineRun:
    name: str
    concurrency: int
    output_tokens_per_s: float


@dataclass
class BenchReport:
    model: str
    precision: str
    device: str
    new_tokens: int
    decoder: str = ""  # the engine's forward pass (lean or transformers)
    rounds: int = 1  # each figure is the median of this many interleaved rounds
    engine_runs: list[EngineRun] = field(default_factory=list)
    baselines: list[BaselineRun] = field(default_factory=list)
    join_ttft_idle_s: float | None = None
    join_ttft_busy_s: float | None = None
    join_running: int = 0  # requests in the batch when the joining request got its first token (the fewest of its tries)
    prefill_runs: list[PrefillRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def format_table(self) -> str:
        lines = [
            f"Model {self.model} · {self.precision} · {self.device} · {self.new_tokens} new tokens per request"
            + (f" · {self.decoder} forward pass" if self.decoder else "")
            + (f" · median of {self.rounds} interleaved rounds" if self.rounds > 1 else ""),
            "",
            f"{'concurrency':>11} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'lat p50':>8} {'lat p99':>8} {'peak mem':>9}",
        ]
        for run in self.engine_runs:
            lines.append(
                f"{run.concurrency:>11} {run.output_tokens_per_s:>8.1f} {run.ttft_p50_s:>8.2f}s {run.ttft_p99_s:>8.2f}s "
                f"{run.latency_p50_s:>7.2f}s {run.latency_p99_s:>7.2f}s {run.peak_memory_bytes / 2**20:>6.0f} MB"
            )
        if self.baselines:
            lines += ["", "Baselines (same model, prompts and token count):"]
            lines += [f"  {b.name:<28} concurrency {b.concurrency:>3}: {b.output_tokens_per_s:8.1f} tok/s" for b in self.baselines]
            lines += ["", "Engine tok/s as a ratio to each baseline:"]
            for run in self.engine_runs:
                ratios = "  ".join(f"{name} {value:.2f}x" for name, value in run.ratios.items())
                lines.append(f"  concurrency {run.concurrency:>3}: {ratios}")
        if self.prefill_runs:
            lines += ["", "Long prompts (one new token, idle engine):",
                      f"{'prompt tokens':>13} {'TTFT':>8} {'prefill tok/s':>14} {'llama.cpp tok/s':>16} {'ratio':>7}"]
            for run in self.prefill_runs:
                peer = f"{run.llama_cpp_prefill_tokens_per_s:16.1f}" if run.llama_cpp_prefill_tokens_per_s else f"{'–':>16}"
                ratio = f"{run.ratio:6.2f}x" if run.ratio else f"{'–':>7}"
                lines.append(f"{run.prompt_tokens:>13} {run.ttft_s:>7.3f}s {run.prefill_tokens_per_s:>14.1f} {peer} {ratio}")
        if self.join_ttft_idle_s is not None and self.join_ttft_busy_s is not None:
            lines += [
                "",
                f"Time to first token of a request joining a busy engine: {self.join_ttft_busy_s:.3f} s "
                f"vs {self.join_ttft_idle_s:.3f} s idle ({self.join_ttft_busy_s / self.join_ttft_idle_s:.2f}x; "
                f"{self.join_running} requests in its batch)",
            ]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


class PeakMemory:
    """Peak memory during a run: CUDA's allocator peak on a GPU, else this process's RSS sampled at 50 Hz."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            process = psutil.Process()
            self.peak = process.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(0.02):
                    self.peak = max(self.peak, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        if self.cuda:
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


def _chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def _params(new_tokens: int) -> SamplingParams:
    return SamplingParams(temperature=0.0, repetition_penalty=1.0, max_new_tokens=new_tokens, ignore_eos=True)


@dataclass
class LevelOutcome:
    """What one batch of concurrent requests gave: their results, the wall time, the peak memory, and the
    time of every streamed piece per request (for inter-token latency)."""

    results: list
    elapsed_s: float
    peak_memory_bytes: int
    piece_times: list[list[float]]


def drive_level(engine: InferenceEngine, concurrency: int, new_tokens: int, device: str) -> LevelOutcome:
    """Submit `concurrency` distinct greedy requests at once and wait for all of them (failures included)."""
    prompts = level_prompts(concurrency)
    piece_times: list[list[float]] = [[] for _ in prompts]
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        handles = [engine.submit(GenerationRequest(messages=_chat(p), params=_params(new_tokens)),
                                 on_event=lambda event, i=i: event.text and piece_times[i].append(time.perf_counter()))
                   for i, p in enumerate(prompts)]
        results = [h.result() for h in handles]
        elapsed = time.perf_counter() - started
    return LevelOutcome(results, elapsed, memory.peak, piece_times)


def run_engine_level(engine: InferenceEngine, concurrency: int, new_tokens: int, device: str) -> EngineRun:
    outcome = drive_level(engine, concurrency, new_tokens, device)
    results = outcome.results
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"benchmark request failed: {failed[0]}")
    ttfts = sorted(r.time_to_first_token_s for r in results)
    latencies = sorted(r.total_s for r in results)
    return EngineRun(
        concurrency=concurrency,
        output_tokens_per_s=sum(r.completion_tokens for r in results) / outcome.elapsed_s,
        ttft_p50_s=percentile(ttfts, 0.5), ttft_p99_s=percentile(ttfts, 0.99),
        latency_p50_s=percentile(latencies, 0.5), latency_p99_s=percentile(latencies, 0.99),
        peak_memory_bytes=outcome.peak_memory_bytes,
    )


def measure_join_ttft(engine: InferenceEngine, new_tokens: int, background: int = 7) -> tuple[float, float, int]:
    """(median TTFT on an idle engine, median TTFT of a request that joins `background` running ones, the fewest
    requests that shared the joiner's batch at its first token). The batch is widened to hold them all for the
    measurement: a run at concurrency 1 sets the max batch size to 1, where the joiner would queue behind the
    others instead of joining them."""
    idle = [engine.generate(GenerationRequest(messages=_chat(f"Idle probe {i}: say hello."), params=_params(8))).time_to_first_token_s
            for i in range(3)]
    settings = engine.settings
    engine.configure(max_batch_size=max(settings.max_batch_size, background + 1),
                     queue_limit=max(settings.queue_limit, background + 1))
    busy, shared = [], []
    try:
        for attempt in range(3):
            started = [threading.Event() for _ in range(background)]
            handles = [
                engine.submit(GenerationRequest(messages=_chat(f"{PROMPTS[i % len(PROMPTS)]} (busy {attempt}-{i})"),
                                                params=_params(new_tokens * 4)),
                              on_event=lambda _e, i=i: started[i].set())
                for i in range(background)
            ]
            for event in started:  # every background request has produced text: all are running
                event.wait(600)
            running: list[int] = []
            joiner = engine.submit(GenerationRequest(messages=_chat(f"Join probe {attempt}: say hello."), params=_params(8)),
                                   on_event=lambda _e: running or running.append(engine.snapshot().running))
            busy.append(joiner.result().time_to_first_token_s)
            shared.append(running[0] if running else 0)
            for handle in handles:
                handle.cancel()
            for handle in handles:
                handle.result()
    finally:
        engine.configure(max_batch_size=settings.max_batch_size, queue_limit=settings.queue_limit)
    return statistics.median(idle), statistics.median(busy), min(shared)


def hf_generate_baselines(engine: InferenceEngine, levels: list[int], new_tokens: int) -> list[BaselineRun]:
    def run(loaded) -> list[BaselineRun]:
        model, tokenizer = loaded.model, loaded.tokenizer
        texts = [tokenizer.apply_chat_template(_chat(p + f" (request {i})"), tokenize=False, add_generation_prompt=True)
                 if loaded.info.has_chat_template else p for i, p in enumerate(PROMPTS * 8)]
        out: list[BaselineRun] = []
        options = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        # One request at a time: two prompts, tokens over total time.
        started, tokens = time.perf_counter(), 0
        for text in texts[:2]:
            encoded = tokenizer([text], return_tensors="pt", add_special_tokens=False).to(loaded.device)
            generated = model.generate(**encoded, **options)
            tokens += generated.shape[1] - encoded["input_ids"].shape[1]
        out.append(BaselineRun("hf-generate-sequential", 1, tokens / (time.perf_counter() - started)))
        previous_side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            for level in [lv for lv in levels if lv > 1]:
                encoded = tokenizer(texts[:level], return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
                started = time.perf_counter()
                generated = model.generate(**encoded, **options)
                elapsed = time.perf_counter() - started
                out.append(BaselineRun("hf-static-batch", level, level * (generated.shape[1] - encoded["input_ids"].shape[1]) / elapsed))
        finally:
            tokenizer.padding_side = previous_side
        return out

    return engine.run_on_model(lambda loaded: torch.inference_mode()(run)(loaded))


def level_prompts(concurrency: int) -> list[str]:
    """The distinct prompts of one concurrency level (the engine's and llama.cpp batched's)."""
    return [PROMPTS[i % len(PROMPTS)] + f" (request {i})" for i in range(concurrency)]


def _llama_cpp_process(spec: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.bench.llama_cpp_baseline"], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=1800)


@dataclass
class LlamaCppWorkaround:
    """What the baseline process needed, kept across the bench's rounds: a crash met in the first round is not
    met again in every later one."""

    no_extra_buffers: bool = False
    notes: list[str] = field(default_factory=list)


def run_llama_cpp_process(spec: dict, workaround: LlamaCppWorkaround, run=_llama_cpp_process) -> dict:
    """The baseline process's figures. A process killed by a signal is run again without llama.cpp's extra
    buffer types: its AMX weight repacking crashes on some CPUs (seen on a VM whose CPU reports AMX)."""
    completed = run(dict(spec, no_extra_buffers=True) if workaround.no_extra_buffers else spec)
    if completed.returncode < 0 and not workaround.no_extra_buffers:
        signal_number = -completed.returncode
        completed = run(dict(spec, no_extra_buffers=True))
        if completed.returncode == 0:
            workaround.no_extra_buffers = True
            workaround.notes.append(f"llama.cpp crashed (signal {signal_number}) with its extra buffer types "
                                    "(weights repacked for AMX at load), so it was measured without them")
    if completed.returncode != 0:
        reason = completed.stderr.strip()[-500:] or f"exit status {completed.returncode}"
        raise RuntimeError(f"the llama.cpp baseline failed: {reason}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def llama_cpp_baseline(engine: InferenceEngine, gguf_path: str, new_tokens: int, levels: list[int],
                       prefill_texts: dict[int, str], workaround: LlamaCppWorkaround) -> tuple[list[BaselineRun], dict[int, float]] | None:
    """llama.cpp on the same GGUF file and prompts, in its own process: one stream, batched decode at each
    level, and prefill tok/s of each long prompt. None if llama-cpp-python is not installed. What the process
    had to work around is kept in `workaround` for the next round."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return None

    def formatted(loaded) -> dict[str, list[str]]:
        apply = loaded.tokenizer.apply_chat_template
        return {str(level): [apply(_chat(p), tokenize=False, add_generation_prompt=True) for p in level_prompts(level)]
                for level in levels}

    spec = {"gguf_path": gguf_path, "new_tokens": new_tokens, "prompts": list(PROMPTS[:2]),
            "batched_texts": engine.run_on_model(formatted), "prefill_texts": {str(k): v for k, v in prefill_texts.items()}}
    figures = run_llama_cpp_process(spec, workaround)
    runs = [BaselineRun("llama.cpp-one-stream", 1, figures["tokens"] / figures["seconds"])]
    runs += [BaselineRun("llama.cpp-batched", int(level), run["tokens"] / run["seconds"])
             for level, run in figures["batched"].items()]
    prefill = {int(length): run["tokens"] / run["seconds"] for length, run in figures["prefill"].items()}
    return runs, prefill


def run_benchmark(
    engine: InferenceEngine,
    levels: list[int],
    new_tokens: int,
    baselines: bool = True,
    gguf_path: str | None = None,
    report: Callable[[str], None] = print,
    repeat: int = 3,
    prompt_lengths: list[int] | None = None,
    continuous_batching: bool | None = None,
) -> BenchReport:
    """Engine levels and baselines run in rounds (`repeat` of them), interleaved, and each figure is the
    median of its rounds: a machine whose speed drifts (a shared VM) then moves both sides of a ratio.
    `prompt_lengths` adds the long-prompt case (prefill tok/s and time to first token) at those token counts;
    `continuous_batching` adds transformers' continuous batching as a baseline (None: on a GPU only)."""
    info = engine.model_info
    engine.configure(response_cache=False, max_batch_size=max(levels), queue_limit=max(64, max(levels) * 2))
    result = BenchReport(model=info.name, precision=info.precision, device=info.device, new_tokens=new_tokens,
                         rounds=repeat)
    if continuous_batching is None:
        continuous_batching = info.device.startswith("cuda")
    continuous_batching_error = None
    report("warming up")
    engine.generate(GenerationRequest(messages=_chat("Warm-up."), params=_params(4)))
    if engine.snapshot().decoder.endswith("compiling"):
        report("waiting for the decode step to finish compiling")
        while engine.snapshot().decoder.endswith("compiling"):
            time.sleep(0.2)
    result.decoder = engine.snapshot().decoder
    lengths, too_long = fitting_lengths(engine, prompt_lengths or [])
    if too_long:
        result.notes.append(f"prompts of {', '.join(map(str, too_long))} tokens do not fit the model's context "
                            f"of {info.context_length:,}: skipped")
    prefill_texts = prompts_for(engine, lengths) if lengths else {}
    prefill_rounds: list[list[PrefillRun]] = []
    llama_prefill_rounds: list[dict[int, float]] = []
    engine_rounds: dict[int, list[EngineRun]] = {level: [] for level in levels}
    baseline_rounds: dict[tuple[str, int], list[BaselineRun]] = {}
    llama_missing = False
    llama_workaround = LlamaCppWorkaround()
    for round_number in range(1, repeat + 1):
        prefix = f"round {round_number}/{repeat}: " if repeat > 1 else ""
        for level in levels:
            report(f"{prefix}engine, concurrency {level}")
            engine_rounds[level].append(run_engine_level(engine, level, new_tokens, info.device))
        if prefill_texts:
            report(f"{prefix}engine, long prompts of {', '.join(map(str, lengths))} tokens")
            prefill_rounds.append(measure_engine_prefill(engine, prefill_texts))
        if not baselines:
            continue
        report(f"{prefix}baseline: Hugging Face generate (sequential and static batches)")
        runs = hf_generate_baselines(engine, levels, new_tokens)
        if continuous_batching and continuous_batching_error is None:
            report(f"{prefix}baseline: transformers continuous batching")
            try:
                runs += continuous_batching_baselines(engine, level_prompts, levels, new_tokens, _chat)
            except Exception as error:  # a baseline that cannot run must not lose the engine's figures
                continuous_batching_error = f"transformers continuous batching did not run: {error}"
        if gguf_path:
            report(f"{prefix}baseline: llama.cpp (one stream, batched, prefill)")
            llama = llama_cpp_baseline(engine, gguf_path, new_tokens, levels, prefill_texts, llama_workaround)
            llama_missing = llama is None
            if llama is not None:
                runs += llama[0]
                llama_prefill_rounds.append(llama[1])
        for run in runs:
            baseline_rounds.setdefault((run.name, run.concurrency), []).append(run)
    result.engine_runs = [_median(engine_rounds[level]) for level in levels]
    result.baselines = [_median(runs) for runs in baseline_rounds.values()]
    result.prefill_runs = _median_prefill(lengths, prefill_rounds, llama_prefill_rounds)
    report("time to first token, idle and joining a busy engine")
    result.join_ttft_idle_s, result.join_ttft_busy_s, result.join_running = measure_join_ttft(engine, new_tokens)
    if continuous_batching_error:
        result.notes.append(continuous_batching_error)
    result.notes += llama_workaround.notes
    if baselines and not gguf_path:
        result.notes.append("the model is not a GGUF file: no llama.cpp baseline")
    if llama_missing:
        result.notes.append("llama-cpp-python is not installed: no llama.cpp baseline "
                            "(install it with CMAKE_ARGS=\"-DGGML_NATIVE=ON\" pip install llama-cpp-python)")
    per_level = ("hf-static-batch", "llama.cpp-batched", "transformers-continuous-batching")
    single = {b.name: b.output_tokens_per_s for b in result.baselines if b.concurrency == 1 and b.name not in per_level}
    for run in result.engine_runs:
        for name, tokens_per_s in single.items():
            run.ratios[name] = run.output_tokens_per_s / tokens_per_s
        for name in per_level:  # against the same level of the same kind
            same = [b for b in result.baselines if b.name == name and b.concurrency == run.concurrency]
            if same:
                run.ratios[name] = run.output_tokens_per_s / same[0].output_tokens_per_s
    return result


def _median_prefill(lengths: list[int], engine_rounds: list[list[PrefillRun]],
                    llama_rounds: list[dict[int, float]]) -> list[PrefillRun]:
    """Per prompt length, the engine round with the median TTFT, and llama.cpp's median prefill speed beside it."""
    runs = []
    for index, length in enumerate(lengths if engine_rounds else []):
        ordered = sorted((rounds[index] for rounds in engine_rounds), key=lambda run: run.ttft_s)
        run = ordered[(len(ordered) - 1) // 2]
        peers = [rounds[length] for rounds in llama_rounds if length in rounds]
        if peers:
            run.llama_cpp_prefill_tokens_per_s = statistics.median(peers)
        runs.append(run)
    return runs


def _median(runs: list):
    """The run with the median throughput (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run.output_tokens_per_s)
    return ordered[(len(ordered) - 1) // 2]


def write_json(report: BenchReport, path: Path) -> None:
    path.write_text(report.to_json(), encoding="utf-8")
