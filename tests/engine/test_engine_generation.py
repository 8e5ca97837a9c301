"""Generation through the real scheduler thread with a tiny random Llama model."""

from __future__ import annotations

import threading

import pytest

from engine import (
    FinishReason,
    GenerationRequest,
    InvalidRequest,
    NoModelLoaded,
    SamplingParams,
)
from engine.request import GenerationFailed

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=40)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


def test_streamed_pieces_join_to_the_final_text(tiny_engine):
    handle = tiny_engine.submit(GenerationRequest(messages=chat("hello world"), params=GREEDY))
    pieces = list(handle)
    result = handle.result(timeout=30)
    assert len(pieces) > 1
    assert "".join(pieces) == result.text
    assert result.finish_reason is FinishReason.MAX_TOKENS
    assert result.completion_tokens == 40
    assert result.prompt_tokens > 5
    assert result.time_to_first_token_s is not None and result.time_to_first_token_s > 0
    assert result.tokens_per_second is not None and result.tokens_per_second > 0


def test_greedy_output_is_repeatable(tiny_engine):
    first = tiny_engine.generate(GenerationRequest(messages=chat("the capital"), params=GREEDY), timeout=30)
    second = tiny_engine.generate(GenerationRequest(messages=chat("the capital"), params=GREEDY), timeout=30)
    assert first.text == second.text


def test_seeded_sampling_is_repeatable_and_seeds_differ(tiny_engine):
    def sample(seed: int) -> str:
        params = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=30, seed=seed)
        return tiny_engine.generate(GenerationRequest(messages=chat("hello"), params=params), timeout=30).text

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_greedy_output_is_the_same_alone_and_beside_other_requests(tiny_engine):
    alone = tiny_engine.generate(GenerationRequest(messages=chat("batching"), params=GREEDY), timeout=30).text
    others = [
        tiny_engine.submit(GenerationRequest(messages=chat(f"other request {i}"), params=SamplingParams(max_new_tokens=60, seed=i)))
        for i in range(3)
    ]
    together = tiny_engine.submit(GenerationRequest(messages=chat("batching"), params=GREEDY))
    assert together.result(timeout=30).text == alone
    assert all(h.result(timeout=30).ok for h in others)


def test_cancel_mid_stream_ends_with_cancelled_and_keeps_partial_text(tiny_engine):
    params = SamplingParams(temperature=0.0, max_new_tokens=1900, ignore_eos=True)
    first_piece = threading.Event()
    handle = tiny_engine.submit(
        GenerationRequest(messages=chat("long answer"), params=params),
        on_event=lambda event: first_piece.set(),
    )
    assert first_piece.wait(30)
    handle.cancel()
    result = handle.result(timeout=30)
    assert result.finish_reason is FinishReason.CANCELLED
    assert 0 < result.completion_tokens < 1900


def test_stop_string_ends_the_reply_before_it(tiny_engine):
    free = tiny_engine.generate(GenerationRequest(messages=chat("stop here"), params=GREEDY), timeout=30).text
    stop = free[10:13]
    assert stop.strip(), f"the reference text is too short or blank: {free!r}"
    params = SamplingParams(temperature=0.0, max_new_tokens=40, stop=(stop,))
    result = tiny_engine.generate(GenerationRequest(messages=chat("stop here"), params=params), timeout=30)
    assert result.finish_reason is FinishReason.STOP_STRING
    assert result.text == free[: free.index(stop)]
    assert stop not in result.text


def test_prompt_longer_than_the_context_is_refused_with_its_length(tiny_engine):
    handle = tiny_engine.submit(GenerationRequest(messages=chat("hello world " * 2000), params=GREEDY))
    result = handle.result(timeout=30)
    assert result.finish_reason is FinishReason.ERROR
    assert "context window of 2,048 tokens" in result.error
    with pytest.raises(GenerationFailed, match="context window"):
        list(handle)
    # The engine keeps working.
    assert tiny_engine.generate(GenerationRequest(messages=chat("hi"), params=GREEDY), timeout=30).ok


def test_reply_that_fills_the_context_ends_with_context_full(tiny_engine):
    params = SamplingParams(temperature=0.0, max_new_tokens=5000)
    result = tiny_engine.generate(GenerationRequest(messages=chat("hello " * 100), params=params), timeout=60)
    assert result.finish_reason is FinishReason.CONTEXT_FULL
    assert result.prompt_tokens + result.completion_tokens == 2048


def test_empty_message_is_rejected_before_queueing(tiny_engine):
    with pytest.raises(InvalidRequest, match="empty"):
        tiny_engine.submit(GenerationRequest(messages=chat("   "), params=GREEDY))


def test_out_of_range_sampling_settings_are_named(tiny_engine):
    with pytest.raises(InvalidRequest, match="temperature.*top-p"):
        tiny_engine.submit(GenerationRequest(messages=chat("hi"), params=SamplingParams(temperature=-1, top_p=0)))


def test_submit_without_a_model_says_load_one(engine):
    with pytest.raises(NoModelLoaded, match="Load a model"):
        engine.submit(GenerationRequest(messages=chat("hi"), params=GREEDY))


def test_unload_ends_running_requests_with_a_message(tiny_engine):
    started = threading.Event()
    handle = tiny_engine.submit(
        GenerationRequest(messages=chat("long"), params=SamplingParams(max_new_tokens=1900, ignore_eos=True)),
        on_event=lambda event: started.set(),
    )  # ignore_eos: a sampled end of text must not finish it before the unload
    assert started.wait(30)
    tiny_engine.unload()
    result = handle.result(timeout=30)
    assert result.finish_reason in (FinishReason.ERROR, FinishReason.MAX_TOKENS)
    if result.finish_reason is FinishReason.ERROR:
        assert "unloaded" in result.error
    assert tiny_engine.model_info is None
