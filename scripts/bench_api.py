"""Benchmark of the local API against the same engine in process, measured side by side in one run.

(a) N concurrent streaming API clients against the same N streams submitted in process: the ratio of
    tokens/s, and the API's extra time to first token at one client (p50 of paired trials).
(b) llama-cpp-python's own OpenAI server: not run here (llama-cpp-python is not installed; it builds from
    source); the script says so.
(c) A load test in the seeds' form: U concurrent streaming users for D seconds with an asyncio httpx client.
    A 503 that the client retries (after Retry-After) is counted, not failed; p50/p99 time to first token.

    .venv/bin/python scripts/bench_api.py                                   # embedded SmolLM2, full settings
    .venv/bin/python scripts/bench_api.py --model tests/… --users 20 --seconds 5 --rounds 1   # a quick check

It works in a data directory of its own (a temporary folder with an administrator of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.api.config import ApiConfig  # noqa: E402
from console.core import ConsoleCore  # noqa: E402
from engine import ModelSpec, SamplingParams  # noqa: E402
from engine.metrics import percentile  # noqa: E402

PROMPTS = [f"Write a short story about robot number {n} who learns to paint." for n in range(10_000)]


class Bench:
    def __init__(self, args):
        self.args = args
        self.core = ConsoleCore(data_dir=Path(tempfile.mkdtemp(prefix="llm-console-bench-api-")))
        self.admin = self.core.create_first_admin("admin", "bench-pass-phrase-1")
        spec = (ModelSpec(args.model, precision=args.precision, device="cpu") if args.model
                else self.core.default_model_spec(args.precision, "cpu"))
        info = self.core.load_model(self.admin, spec)
        print(f"[bench] model {info.name} · {info.precision} · {info.device}", file=sys.stderr)
        # Distinct prompts, and no response cache: every request is generated.
        self.core.configure_engine(self.admin, response_cache=False, queue_limit=args.queue_limit)
        self.base_url = self.core.api.start(self.admin, ApiConfig(port=0))
        self.secret = self.core.api.keys.create(self.admin, "admin", "bench").secret
        self.model = info.name
        self._prompt = iter(PROMPTS)

    def prompt(self) -> str:
        return next(self._prompt)

    def body(self, tokens: int) -> dict:
        return {"model": self.model, "messages": [{"role": "user", "content": self.prompt()}], "max_tokens": tokens,
                "temperature": 0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}

    # --- in process ------------------------------------------------------------------------------------------
    def in_process(self, clients: int, tokens: int) -> tuple[float, list[float]]:
        """(tokens/s, client-side TTFTs) of `clients` streams submitted together through the core."""
        params = SamplingParams(temperature=0, max_new_tokens=tokens, ignore_eos=True)
        ttfts, counts = [], []
        lock = threading.Lock()

        def stream(handle, sent: float) -> None:
            first = None
            for _piece in handle:
                first = first or time.perf_counter()
            with lock:
                ttfts.append(first - sent)
                counts.append(handle.result().completion_tokens)

        started = time.perf_counter()
        threads = []
        for _ in range(clients):
            sent = time.perf_counter()
            handle = self.core.chat(self.admin, [{"role": "user", "content": self.prompt()}], params)
            threads.append(threading.Thread(target=stream, args=(handle, sent)))
            threads[-1].start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - started), ttfts

    # --- through the API -------------------------------------------------------------------------------------
    async def one_stream(self, client: httpx.AsyncClient, tokens: int, stats: dict) -> float | None:
        """One streamed request, retried after a 503; returns its TTFT (None: failed)."""
        while True:
            sent = time.perf_counter()
            first, completion, done = None, 0, False
            async with client.stream("POST", "/chat/completions", json=self.body(tokens)) as response:
                if response.status_code == 503:
                    stats["retried_503"] += 1
                    await response.aread()
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code != 200:
                    stats["failed"] += 1
                    return None
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        break
                    if chunk["choices"] and first is None:
                        first = time.perf_counter()
                    if chunk.get("usage"):
                        completion = chunk["usage"]["completion_tokens"]
            if not done or first is None:
                stats["failed"] += 1
                return None
            stats["completed"] += 1
            stats["tokens"] += completion
            return first - sent

    def client(self, connections: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {self.secret}"},
                                 timeout=httpx.Timeout(300.0), limits=httpx.Limits(max_connections=connections + 8,
                                                                                   max_keepalive_connections=connections + 8))

    async def api_level(self, clients: int, tokens: int) -> tuple[float, list[float], dict]:
        stats = {"completed": 0, "failed": 0, "retried_503": 0, "tokens": 0}
        async with self.client(clients) as client:
            started = time.perf_counter()
            ttfts = await asyncio.gather(*(self.one_stream(client, tokens, stats) for _ in range(clients)))
            elapsed = time.perf_counter() - started
        return stats["tokens"] / elapsed, [t for t in ttfts if t is not None], stats

    async def extra_ttft(self, trials: int) -> list[float]:
        """Paired one-client trials on one kept-alive connection (a client's usual case): API TTFT minus the
        in-process TTFT, each measured from the caller's send to its first piece of text."""
        stats = {"completed": 0, "failed": 0, "retried_503": 0, "tokens": 0}
        extra = []
        async with self.client(1) as client:
            await self.one_stream(client, 2, stats)  # opens the connection
            for _ in range(trials):
                _, local = await asyncio.to_thread(self.in_process, 1, 2)
                api = await self.one_stream(client, 2, stats)
                extra.append(api - local[0])
        return extra

    async def load_test(self, users: int, seconds: float, tokens: int) -> tuple[dict, list[float]]:
        stats = {"completed": 0, "failed": 0, "retried_503": 0, "tokens": 0}
        ttfts: list[float] = []
        deadline = time.perf_counter() + seconds

        async def user(client) -> None:
            while time.perf_counter() < deadline:
                try:
                    ttft = await self.one_stream(client, tokens, stats)
                except httpx.HTTPError:
                    stats["failed"] += 1
                    continue
                if ttft is not None:
                    ttfts.append(ttft)

        async with self.client(users) as client:
            started = time.perf_counter()
            await asyncio.gather(*(user(client) for _ in range(users)))
            stats["elapsed_s"] = time.perf_counter() - started
        return stats, ttfts

    def close(self) -> None:
        self.core.api.close()
        self.core.shutdown()


def p(values: list[float], fraction: float) -> float:
    return percentile(sorted(values), fraction) or 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a Hugging Face folder or GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per request in (a)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a); figures are medians")
    parser.add_argument("--ttft-trials", type=int, default=20, help="paired one-client trials for the extra TTFT")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--load-tokens", type=int, default=32, help="tokens per request in (c)")
    parser.add_argument("--queue-limit", type=int, default=64, help="the engine's queue limit during the run")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        asyncio.run(bench.api_level(1, 4))  # warm-up: first connection, first compile of nothing
        bench.in_process(1, 4)
        ratios, api_rates, local_rates = [], [], []
        for _ in range(args.rounds):
            local_rate, _ = bench.in_process(args.clients, args.tokens)
            api_rate, _, stats = asyncio.run(bench.api_level(args.clients, args.tokens))
            local_rates.append(local_rate)
            api_rates.append(api_rate)
            ratios.append(api_rate / local_rate)
        extra = asyncio.run(bench.extra_ttft(args.ttft_trials))
        print(f"(a) {args.clients} streams, {args.tokens} tokens each, median of {args.rounds} interleaved rounds:")
        print(f"    in process {statistics.median(local_rates):.1f} tok/s, API {statistics.median(api_rates):.1f} tok/s"
              f" -> API / in process = {statistics.median(ratios):.3f}x (target >= 0.9x)")
        print(f"    extra time to first token through the API at 1 client: p50 {p(extra, 0.5) * 1000:.2f} ms "
              f"(p90 {p(extra, 0.9) * 1000:.2f} ms) over {args.ttft_trials} paired trials (target <= 10 ms)")
        try:
            import llama_cpp  # noqa: F401
            print("(b) llama-cpp-python is installed, but this script does not start its server yet: skipped")
        except ImportError:
            print("(b) skipped: llama-cpp-python is not installed (it builds from source)")
        stats, ttfts = asyncio.run(bench.load_test(args.users, args.seconds, args.load_tokens))
        print(f"(c) {args.users} concurrent streaming users for {stats['elapsed_s']:.0f} s, {args.load_tokens} tokens "
              f"each: {stats['completed']} requests completed, {stats['failed']} failed, {stats['retried_503']} 503s "
              f"retried, {stats['tokens'] / stats['elapsed_s']:.1f} tok/s")
        print(f"    time to first token of the accepted attempt: p50 {p(ttfts, 0.5):.3f} s, p99 {p(ttfts, 0.99):.3f} s")
        return 0 if stats["failed"] == 0 else 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
