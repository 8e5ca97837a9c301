"""Continuous batching with the tiny model: joining, leaving, live knobs, queue limit, OOM back-off, cache."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from engine import EngineBusy, FinishReason, GenerationRequest, InferenceEngine, InvalidRequest, ModelSpec, SamplingParams


@pytest.fixture(params=["lean", "transformers"])
def tiny_engine(request, tmp_path, tiny_model_dir):
    """Every batching behaviour holds on both forward passes: the lean decoder and transformers' own."""
    engine = InferenceEngine(cache_dir=tmp_path / "cache", lean_decoder=request.param == "lean", compile_decode="off")
    engine.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
    yield engine
    engine.shutdown()


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def greedy(tokens: int, ignore_eos: bool = False) -> SamplingParams:
    """ignore_eos for the long requests that hold a slot: an end of text must not free it early."""
    return SamplingParams(temperature=0.0, max_new_tokens=tokens, ignore_eos=ignore_eos)


def submit_and_wait_for_first_text(engine, text: str, params: SamplingParams):
    started = threading.Event()
    handle = engine.submit(GenerationRequest(messages=chat(text), params=params), on_event=lambda e: started.set())
    assert started.wait(30)
    return handle


def test_late_joiner_finishes_while_the_long_request_still_runs(tiny_engine):
    long_request = submit_and_wait_for_first_text(tiny_engine, "a long one", greedy(1900, ignore_eos=True))
    short = tiny_engine.submit(GenerationRequest(messages=chat("short"), params=greedy(5)))
    assert short.result(timeout=30).completion_tokens == 5
    assert not long_request.done
    long_request.cancel()
    assert long_request.result(timeout=30).finish_reason is FinishReason.CANCELLED


def test_cancel_frees_the_slot_for_the_next_request(tiny_engine):
    tiny_engine.configure(max_batch_size=1)
    first = submit_and_wait_for_first_text(tiny_engine, "first", greedy(1900, ignore_eos=True))
    second = tiny_engine.submit(GenerationRequest(messages=chat("second"), params=greedy(8)))
    assert tiny_engine.queue_counts() == (1, 1)
    first.cancel()
    assert second.result(timeout=30).completion_tokens == 8
    assert first.result(timeout=30).finish_reason is FinishReason.CANCELLED


def test_greedy_text_is_identical_alone_and_inside_a_batch(tiny_engine):
    tiny_engine.configure(response_cache=False, max_wait_ms=50)
    prompts = ["hello", "the capital of France is", "batching many requests " * 5, "0 1 2 3"]
    alone = [tiny_engine.generate(GenerationRequest(messages=chat(p), params=greedy(30)), timeout=30).text for p in prompts]
    handles = [tiny_engine.submit(GenerationRequest(messages=chat(p), params=greedy(30))) for p in prompts]
    together = [h.result(timeout=30).text for h in handles]
    assert together == alone


def test_max_batch_size_applies_live(tiny_engine):
    tiny_engine.configure(max_batch_size=1)
    first = submit_and_wait_for_first_text(tiny_engine, "first", greedy(1900, ignore_eos=True))
    joined = [threading.Event(), threading.Event()]
    waiting = [
        tiny_engine.submit(GenerationRequest(messages=chat(f"w{i}"), params=greedy(1900, ignore_eos=True)), on_event=lambda e, i=i: joined[i].set())
        for i in range(2)
    ]
    assert tiny_engine.queue_counts() == (2, 1)
    assert not any(event.is_set() for event in joined)
    tiny_engine.configure(max_batch_size=3)
    assert all(event.wait(30) for event in joined)
    assert not first.done, "the waiting requests only started after the running one ended"
    for handle in [first, *waiting]:
        handle.cancel()
        handle.result(timeout=30)


def test_queue_limit_rejects_with_a_clear_busy_message(tiny_engine):
    tiny_engine.configure(max_batch_size=1, queue_limit=2)
    running = submit_and_wait_for_first_text(tiny_engine, "busy", greedy(1900, ignore_eos=True))
    queued = [tiny_engine.submit(GenerationRequest(messages=chat(f"q{i}"), params=greedy(3))) for i in range(2)]
    with pytest.raises(EngineBusy, match="queue limit 2"):
        tiny_engine.submit(GenerationRequest(messages=chat("one too many"), params=greedy(3)))
    running.cancel()
    assert all(h.result(timeout=30).completion_tokens == 3 for h in queued)


def test_invalid_knob_values_are_named(tiny_engine):
    with pytest.raises(InvalidRequest, match="max wait must be 0 to 200 ms"):
        tiny_engine.configure(max_wait_ms=500)
    with pytest.raises(InvalidRequest, match="Unknown engine setting"):
        tiny_engine.configure(batch=3)


def test_injected_out_of_memory_halves_the_batch_and_loses_nothing(tiny_engine):
    tiny_engine.configure(response_cache=False, max_batch_size=4, max_wait_ms=100)
    prompts = [f"request number {i}" for i in range(4)]
    expected = [tiny_engine.generate(GenerationRequest(messages=chat(p), params=greedy(40)), timeout=30).text for p in prompts]

    runner = tiny_engine._loop._runner
    original_decode = runner.decode
    injected = {"done": False}

    def decode_that_runs_out_of_memory_once():
        if len(runner.running) >= 2 and not injected["done"]:
            injected["done"] = True
            raise torch.OutOfMemoryError("injected")
        return original_decode()

    runner.decode = decode_that_runs_out_of_memory_once
    handles = [tiny_engine.submit(GenerationRequest(messages=chat(p), params=greedy(40))) for p in prompts]
    results = [h.result(timeout=60) for h in handles]
    assert injected["done"]
    assert [r.text for r in results] == expected
    assert all(r.finish_reason is FinishReason.MAX_TOKENS and r.completion_tokens == 40 for r in results)
    assert tiny_engine.settings.max_batch_size < 4
    assert "Out of memory" in tiny_engine.notices()[-1][1]
    assert tiny_engine.snapshot().oom_backoffs == 1


def test_out_of_memory_alone_ends_that_request_with_a_message_and_the_engine_goes_on(tiny_engine):
    tiny_engine.configure(max_batch_size=1)
    runner = tiny_engine._loop._runner
    original_decode = runner.decode
    injected = {"done": False}

    def decode_that_runs_out_of_memory_once():
        if not injected["done"]:
            injected["done"] = True
            raise torch.OutOfMemoryError("injected")
        return original_decode()

    runner.decode = decode_that_runs_out_of_memory_once
    result = tiny_engine.generate(GenerationRequest(messages=chat("alone"), params=greedy(10)), timeout=30)
    assert result.finish_reason is FinishReason.ERROR
    assert result.error.startswith("Out of memory while generating, even alone.")
    assert tiny_engine.settings.max_batch_size == 1
    assert tiny_engine.generate(GenerationRequest(messages=chat("next"), params=greedy(5)), timeout=30).completion_tokens == 5


def test_repeated_greedy_request_is_answered_from_the_cache(tiny_engine):
    request = lambda: GenerationRequest(messages=chat("cache me"), params=greedy(20))  # noqa: E731
    first = tiny_engine.generate(request(), timeout=30)
    second = tiny_engine.generate(request(), timeout=30)
    assert not first.cached and second.cached
    assert second.text == first.text and second.completion_tokens == first.completion_tokens
    tiny_engine.configure(response_cache=False)
    assert not tiny_engine.generate(request(), timeout=30).cached


def test_sampled_requests_are_never_cached(tiny_engine):
    params = SamplingParams(temperature=0.8, max_new_tokens=10, seed=3)
    tiny_engine.generate(GenerationRequest(messages=chat("sampled"), params=params), timeout=30)
    assert not tiny_engine.generate(GenerationRequest(messages=chat("sampled"), params=params), timeout=30).cached


def test_snapshot_reports_queue_batch_and_percentiles(tiny_engine):
    tiny_engine.configure(response_cache=False)
    for i in range(3):
        tiny_engine.generate(GenerationRequest(messages=chat(f"n{i}"), params=greedy(10)), timeout=30)
    snapshot = tiny_engine.snapshot()
    assert snapshot.requests_finished == 3
    assert snapshot.generated_tokens_total == 30
    assert snapshot.ttft_p50 is not None and snapshot.latency_p99 >= snapshot.latency_p50
    assert snapshot.waiting == 0 and snapshot.running == 0
    assert snapshot.latency_histogram[-1] == (float("inf"), 3)


def test_snapshot_names_the_forward_pass(tiny_engine):
    expected = "lean" if tiny_engine.lean_decoder else "transformers (batched)"
    assert tiny_engine.snapshot().decoder == expected


def test_both_forward_passes_give_the_same_greedy_text(tmp_path, tiny_model_dir):
    prompts = ["hello", "the capital of France is", "batching many requests " * 5]
    texts = {}
    for lean in (True, False):
        engine = InferenceEngine(cache_dir=tmp_path / "cache", lean_decoder=lean, compile_decode="off")
        try:
            engine.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
            handles = [engine.submit(GenerationRequest(messages=chat(p), params=greedy(25))) for p in prompts]
            texts[lean] = [h.result(timeout=30).text for h in handles]
        finally:
            engine.shutdown()
    assert texts[True] == texts[False]
    assert all(texts[True])


def test_a_failed_compile_leaves_the_uncompiled_decoder_serving_with_a_notice(tmp_path, tiny_model_dir, monkeypatch):
    import torch

    def no_compiler(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    engine = InferenceEngine(cache_dir=tmp_path / "cache")
    engine.compile_decode = "on"
    try:
        engine.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
        expected = ("Compiling the decode step failed, so it runs uncompiled: "
                    "InvalidCxxCompiler: No working C++ compiler found")
        deadline = time.monotonic() + 30
        while not engine.notices() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.notices()[-1][1] == expected
        assert engine.snapshot().decoder == "lean"
        assert engine.generate(GenerationRequest(messages=chat("still works"), params=greedy(5)), timeout=30).completion_tokens == 5
    finally:
        engine.shutdown()


def test_compile_mode_is_validated(engine):
    with pytest.raises(InvalidRequest, match="Compile mode must be one of auto, on, off"):
        engine.compile_decode = "sometimes"


def test_auto_compiles_on_a_gpu_only():
    from engine.compile_settings import compile_wanted

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_wanted("auto", cuda) and not compile_wanted("auto", cpu)
    assert compile_wanted("on", cpu) and not compile_wanted("off", cuda)
    with pytest.raises(ValueError, match="compile mode must be one of auto, on, off"):
        compile_wanted("sometimes", cpu)


def test_a_pinned_thread_count_runs_on_the_scheduler_thread_and_shows_in_the_figures(tiny_engine):
    tiny_engine.configure(threads=1)
    tiny_engine.generate(GenerationRequest(messages=chat("hello"), params=greedy(6, ignore_eos=True)), timeout=60)
    assert tiny_engine.snapshot().intra_op_threads == 1
    assert tiny_engine.run_on_model(lambda _loaded: torch.get_num_threads(), timeout=60) == 1


def test_a_thread_count_outside_the_range_is_refused():
    from engine.batching_settings import BatchingSettings

    with pytest.raises(InvalidRequest, match="threads must be 0"):
        BatchingSettings(threads=-1).validate()
