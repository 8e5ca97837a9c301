"""Benchmark of the local API against the same engine in process, measured side by side in one run.

(a) N concurrent streaming API clients against the same N streams submitted in process: the ratio of
    tokens/s, and the API's extra time to first token at one client (p50 of paired trials).
(b) llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`, in its own process, all cores) on the
    same GGUF file, N concurrent streaming clients each, rounds interleaved with ours: the ratio of tokens/s.
    Needs `pip install 'llama-cpp-python[server]'` (it builds from source); without it the script says so.
(c) A load test in the seeds' form: U concurrent streaming users for D seconds with an asyncio httpx client.
    A 503 that the client retries (after Retry-After) is counted, not failed; p50/p99 time to first token.

    .venv/bin/python scripts/bench_api.py                                   # embedded SmolLM2, full settings
    .venv/bin/python scripts/bench_api.py --model tests/… --users 20 --seconds 5 --rounds 1   # a quick check

It works in a data directory of its own (a temporary folder with an administrator of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.api.config import ApiConfig  # noqa: E402
from console.core import ConsoleCore  # noqa: E402
from engine import ModelSpec, SamplingParams  # noqa: E402
from engine.metrics import percentile  # noqa: E402



def distinct_prompts():
    """Endless, all different (the response cache is off too): a retried 503 takes a new one, so a load test
    of 200 users asks for tens of thousands."""
    for n in itertools.count():
        yield f"Write a short story about robot number {n} who learns to paint."


class Client:
    """The HTTP side: streamed requests to an OpenAI-compatible server (ours, or llama.cpp's as `peer`)."""

    def __init__(self, base_url: str, secret: str, model: str):
        self.base_url, self.secret, self.model = base_url, secret, model
        self._prompt = distinct_prompts()
        self.peer: LlamaCppServer | None = None  # set while (b) sends to llama.cpp's server instead

    def prompt(self) -> str:
        return next(self._prompt)

    def body(self, tokens: int) -> dict:
        body = {"model": self.model, "messages": [{"role": "user", "content": self.prompt()}], "max_tokens": tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        if self.peer is None:
            body["ignore_eos"] = True
        elif self.peer.end_of_text is not None:  # llama.cpp's server has no ignore_eos: the same effect
            body["logit_bias"] = {str(self.peer.end_of_text): -100}
        return body

    async def one_stream(self, client: httpx.AsyncClient, tokens: int, stats: dict,
                         deadline: float | None = None) -> float | None:
        """One streamed request, retried after a 503 until `deadline` (then given up: the test is over, as a
        Locust user stops); returns its TTFT (None: failed or given up)."""
        while True:
            sent = time.perf_counter()
            first, completion, pieces, done = None, 0, 0, False
            async with client.stream("POST", "/chat/completions", json=self.body(tokens)) as response:
                if response.status_code == 503:
                    stats["retried_503"] += 1
                    await response.aread()
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    if deadline is not None and time.perf_counter() >= deadline:
                        stats["given_up_at_end"] = stats.get("given_up_at_end", 0) + 1
                        return None
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
                    if chunk["choices"] and chunk["choices"][0].get("delta", {}).get("content"):
                        first = first or time.perf_counter()
                        pieces += 1
                    if chunk.get("usage"):
                        completion = chunk["usage"]["completion_tokens"]
            if not done or first is None:
                stats["failed"] += 1
                return None
            stats["completed"] += 1
            stats["tokens"] += completion or pieces  # a server that sends no usage: one token a piece
            return first - sent

    def client(self, connections: int) -> httpx.AsyncClient:
        base_url, secret = (self.peer.base_url, "none") if self.peer else (self.base_url, self.secret)
        return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {secret}"},
                                 timeout=httpx.Timeout(300.0), limits=httpx.Limits(max_connections=connections + 8,
                                                                                   max_keepalive_connections=connections + 8))

    async def api_level(self, clients: int, tokens: int) -> tuple[float, list[float], dict]:
        stats = {"completed": 0, "failed": 0, "retried_503": 0, "tokens": 0}
        async with self.client(clients) as client:
            started = time.perf_counter()
            ttfts = await asyncio.gather(*(self.one_stream(client, tokens, stats) for _ in range(clients)))
            elapsed = time.perf_counter() - started
        return stats["tokens"] / elapsed, [t for t in ttfts if t is not None], stats

    async def load_test(self, users: int, seconds: float, tokens: int) -> tuple[dict, list[float]]:
        stats = {"completed": 0, "failed": 0, "retried_503": 0, "tokens": 0}
        ttfts: list[float] = []
        deadline = time.perf_counter() + seconds

        async def user(client) -> None:
            while time.perf_counter() < deadline:
                try:
                    ttft = await self.one_stream(client, tokens, stats, deadline)
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

class Bench(Client):
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
        super().__init__(self.core.api.start(self.admin, ApiConfig(port=0)),
                         self.core.api.keys.create(self.admin, "admin", "bench").secret, info.name)

    def in_own_process(self, **task) -> dict:
        """Run the HTTP clients in a process of their own, as real clients (and Locust) are: in this process
        their coroutines, and in (c) the 503s 200 users retry, would take the interpreter from the server
        and the engine. `task`: mode "level" (clients, tokens) or "load" (users, seconds, tokens)."""
        import subprocess

        peer = {"base_url": self.peer.base_url, "end_of_text": self.peer.end_of_text} if self.peer else None
        spec = dict(task, base_url=self.base_url, secret=self.secret, model=self.model, peer=peer)
        completed = subprocess.run([sys.executable, __file__, "--client-process", json.dumps(spec)],
                                   capture_output=True, text=True, cwd=str(ROOT))
        if completed.returncode != 0:
            raise RuntimeError(f"the client process failed: {completed.stderr[-2000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1])

    def level_in_own_process(self, clients: int, tokens: int) -> tuple[float, dict]:
        result = self.in_own_process(mode="level", clients=clients, tokens=tokens)
        return result["rate"], result["stats"]

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

    def close(self) -> None:
        self.core.api.close()
        self.core.shutdown()


class LlamaCppServer:
    """`python -m llama_cpp.server` on the GGUF file, in a process of its own with every core."""

    # The server module run with llama.cpp's extra buffer types off when asked (console.bench.llama_cpp_baseline).
    WRAPPER = ("import runpy, sys\n"
               "if sys.argv[1] == 'no-extra-buffers':\n"
               "    from console.bench.llama_cpp_baseline import without_extra_buffers\n"
               "    without_extra_buffers()\n"
               "sys.argv = ['llama_cpp.server', *sys.argv[2:]]\n"
               "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n")

    def __init__(self, gguf: Path, model_name: str, no_extra_buffers: bool = False):
        import socket
        import subprocess

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        threads = str(os.cpu_count() or 1)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.end_of_text = end_of_text_id(gguf)
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.WRAPPER, "no-extra-buffers" if no_extra_buffers else "plain",
             "--model", str(gguf), "--model_alias", model_name,
             "--host", "127.0.0.1", "--port", str(port), "--n_threads", threads, "--n_threads_batch", threads,
             "--n_ctx", "4096",
             # Queue concurrent requests: by default a new request interrupts the one streaming (clients cut off)
             "--interrupt_requests", "False"],
            stdout=subprocess.DEVNULL, stderr=self.log, cwd=str(ROOT))  # a file: a full pipe would block it
        deadline = time.perf_counter() + 180
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.close()
        raise RuntimeError("llama_cpp.server did not answer within 180 s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except Exception:
            self.process.kill()


def end_of_text_id(gguf: Path) -> int | None:
    from engine.errors import ModelLoadError
    from engine.weights.memory_estimate import read_gguf_header

    try:
        value = read_gguf_header(gguf)[0].get("tokenizer.ggml.eos_token_id")
    except ModelLoadError:
        return None
    return int(value) if isinstance(value, int) else None


def compare_with_llama_cpp_server(bench: Bench, args) -> None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as error:
        print(f"(b) skipped: llama-cpp-python's server is not installed ({error}); "
              "pip install 'llama-cpp-python[server]' (it builds from source)")
        return
    from console.registry.default_model import default_model_path

    gguf = Path(args.model) if args.model and args.model.endswith(".gguf") else default_model_path()
    try:
        peer = LlamaCppServer(gguf, bench.model)
        bench.peer = peer
        try:
            asyncio.run(bench.api_level(1, 4))  # warm-up
        except httpx.HTTPError:
            time.sleep(1)
        if peer.process.poll() is not None:  # crashed at its first request: AMX weight repacking, on some CPUs
            print(f"    llama_cpp.server exited with status {peer.process.returncode} at its first request; "
                  "restarted without llama.cpp's extra buffer types (weights repacked for AMX)")
            peer.close()
            peer = LlamaCppServer(gguf, bench.model, no_extra_buffers=True)
            bench.peer = peer
            asyncio.run(bench.api_level(1, 4))
    except RuntimeError as error:
        bench.peer = None
        print(f"(b) skipped: {error}")
        return
    ours, theirs = [], []
    try:
        for _ in range(args.rounds):
            bench.peer = None
            ours.append(bench.level_in_own_process(args.clients, args.tokens)[0])
            bench.peer = peer
            rate, stats = bench.level_in_own_process(args.clients, args.tokens)
            theirs.append(rate)
            if stats["failed"]:
                print(f"    llama.cpp's server: {stats['failed']} of {args.clients} streams failed")
    finally:
        bench.peer = None
        peer.close()
    ratios = [a / b for a, b in zip(ours, theirs) if b]
    print(f"(b) {args.clients} concurrent streaming clients, {args.tokens} tokens each, {gguf.name}, median of "
          f"{args.rounds} interleaved rounds:")
    print(f"    our API {statistics.median(ours):.1f} tok/s, llama_cpp.server {statistics.median(theirs):.1f} tok/s "
          f"-> {statistics.median(ratios):.2f}x (target >= 2x)   rounds: "
          + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(ours, theirs)))


def p(values: list[float], fraction: float) -> float:
    return percentile(sorted(values), fraction) or 0.0


def client_process(spec: dict) -> int:
    """The clients' own process: runs one task against the server and prints its figures as JSON."""
    from types import SimpleNamespace

    client = Client(spec["base_url"], spec["secret"], spec["model"])
    if spec["peer"]:
        client.peer = SimpleNamespace(**spec["peer"])
    if spec["mode"] == "level":
        rate, ttfts, stats = asyncio.run(client.api_level(spec["clients"], spec["tokens"]))
        print(json.dumps({"rate": rate, "ttfts": ttfts, "stats": stats}))
    else:
        stats, ttfts = asyncio.run(client.load_test(spec["users"], spec["seconds"], spec["tokens"]))
        print(json.dumps({"stats": stats, "ttfts": ttfts}))
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--client-process":
        return client_process(json.loads(sys.argv[2]))
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
        bench.level_in_own_process(args.clients, args.tokens)  # and one full level each, unmeasured
        bench.in_process(args.clients, args.tokens)
        ratios, api_rates, local_rates = [], [], []
        for _ in range(args.rounds):
            local_rate, _ = bench.in_process(args.clients, args.tokens)
            api_rate, stats = bench.level_in_own_process(args.clients, args.tokens)
            local_rates.append(local_rate)
            api_rates.append(api_rate)
            ratios.append(api_rate / local_rate)
        extra = asyncio.run(bench.extra_ttft(args.ttft_trials))
        print(f"(a) {args.clients} streams, {args.tokens} tokens each, median of {args.rounds} interleaved rounds "
              "(the API's clients in a process of their own):")
        print(f"    in process {statistics.median(local_rates):.1f} tok/s, API {statistics.median(api_rates):.1f} tok/s"
              f" -> API / in process = {statistics.median(ratios):.3f}x (target >= 0.9x)   rounds (in process/API): "
              + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(local_rates, api_rates)))
        print(f"    extra time to first token through the API at 1 client: p50 {p(extra, 0.5) * 1000:.2f} ms "
              f"(p90 {p(extra, 0.9) * 1000:.2f} ms) over {args.ttft_trials} paired trials (target <= 10 ms)")
        compare_with_llama_cpp_server(bench, args)
        result = bench.in_own_process(mode="load", users=args.users, seconds=args.seconds, tokens=args.load_tokens)
        stats, ttfts = result["stats"], result["ttfts"]
        print(f"(c) {args.users} concurrent streaming users for {stats['elapsed_s']:.0f} s (in a process of their own), "
              f"{args.load_tokens} tokens each: {stats['completed']} requests completed, {stats['failed']} failed, "
              f"{stats['retried_503']} 503s retried, {stats.get('given_up_at_end', 0)} retries given up when the "
              f"test ended, {stats['tokens'] / stats['elapsed_s']:.1f} tok/s")
        print(f"    time to first token of the accepted attempt: p50 {p(ttfts, 0.5):.3f} s, p99 {p(ttfts, 0.99):.3f} s")
        return 0 if stats["failed"] == 0 else 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
