"""One request can never fail its batch neighbours: a request whose sampling, text decoding or stream
callback raises ends alone with a clear message, and the others in the same step carry on (issue 11)."""

from __future__ import annotations

import pytest

from engine import FinishReason, GenerationRequest, SamplingParams
from engine.text_stream import StopStringMatcher

BROKEN_STOP = "\x00breaks the stop matcher"


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def neighbours(engine, count: int = 3):
    return [
        engine.submit(GenerationRequest(messages=chat(f"neighbour {i}"),
                                        params=SamplingParams(temperature=0.8, max_new_tokens=20, seed=i, ignore_eos=True)))
        for i in range(count)
    ]


def assert_neighbours_finished_normally(handles) -> None:
    results = [h.result(timeout=60) for h in handles]
    assert [r.finish_reason for r in results] == [FinishReason.MAX_TOKENS] * len(handles)
    assert all(r.completion_tokens == 20 for r in results)


def test_a_tiny_temperature_beside_normal_requests_lets_every_request_finish(tiny_engine):
    tiny_engine.configure(max_wait_ms=100)
    tiny = tiny_engine.submit(GenerationRequest(messages=chat("tiny temperature"),
                                                params=SamplingParams(temperature=1e-300, max_new_tokens=20, ignore_eos=True)))
    others = neighbours(tiny_engine)
    assert tiny.result(timeout=60).finish_reason is FinishReason.MAX_TOKENS
    assert_neighbours_finished_normally(others)


def test_a_tiny_temperature_samples_like_greedy(tiny_engine):
    tiny_engine.configure(response_cache=False)
    text = {
        temperature: tiny_engine.generate(GenerationRequest(
            messages=chat("same as greedy"), params=SamplingParams(temperature=temperature, max_new_tokens=20)), timeout=60).text
        for temperature in (0.0, 1e-300)
    }
    assert text[1e-300] == text[0.0]


def test_a_request_whose_sampling_raises_ends_alone_with_a_message(tiny_engine, monkeypatch):
    import engine.forward.model_runner as model_runner

    real_sample = model_runner.sample_next_token

    def sample_that_fails_for_seed_99(logits, params, seen_ids, generator):
        # Fault injection: no real input makes robust sampling raise any more.
        if params.seed == 99:
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        return real_sample(logits, params, seen_ids, generator)

    monkeypatch.setattr(model_runner, "sample_next_token", sample_that_fails_for_seed_99)
    tiny_engine.configure(max_wait_ms=100)
    failing = tiny_engine.submit(GenerationRequest(messages=chat("fails"),
                                                   params=SamplingParams(temperature=0.8, max_new_tokens=20, seed=99)))
    others = neighbours(tiny_engine)
    result = failing.result(timeout=60)
    assert result.finish_reason is FinishReason.ERROR
    assert result.error.startswith("Generation failed for this request: ")
    assert_neighbours_finished_normally(others)


def test_a_request_whose_text_decoding_raises_ends_alone_with_a_message(tiny_engine, monkeypatch):
    real_feed = StopStringMatcher.feed

    def feed_that_fails_for_one_request(self, delta):
        if BROKEN_STOP in self._stops:  # fault injection, marked by the request's own stop string
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return real_feed(self, delta)

    monkeypatch.setattr(StopStringMatcher, "feed", feed_that_fails_for_one_request)
    tiny_engine.configure(max_wait_ms=100)
    failing = tiny_engine.submit(GenerationRequest(messages=chat("fails"),
                                                   params=SamplingParams(max_new_tokens=20, stop=(BROKEN_STOP,))))
    others = neighbours(tiny_engine)
    result = failing.result(timeout=60)
    assert result.finish_reason is FinishReason.ERROR
    assert "invalid start byte" in result.error
    assert_neighbours_finished_normally(others)


def test_a_stream_callback_that_raises_ends_only_its_own_request(tiny_engine):
    def receiver_that_breaks(event):
        raise ValueError("the receiver broke")

    tiny_engine.configure(max_wait_ms=100)
    failing = tiny_engine.submit(GenerationRequest(messages=chat("broken receiver"), params=SamplingParams(max_new_tokens=20)),
                                 on_event=receiver_that_breaks)
    others = neighbours(tiny_engine)
    result = failing.result(timeout=60)
    assert result.finish_reason is FinishReason.ERROR
    assert "the receiver broke" in result.error
    assert_neighbours_finished_normally(others)
    # The engine still serves new requests afterwards.
    assert tiny_engine.generate(GenerationRequest(messages=chat("after"), params=SamplingParams(max_new_tokens=5)), timeout=60).ok


@pytest.mark.parametrize("temperature", [1e-300, 1e-6])
def test_temperatures_below_the_greedy_threshold_count_as_greedy(temperature):
    assert SamplingParams(temperature=temperature).greedy
