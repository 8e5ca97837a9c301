"""The engine behind the API: a client that disconnects frees its slot, a full queue and a loading model are
503s with Retry-After (which the official client retries by itself), an error mid-stream is a data chunk."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from engine import ModelSpec, SamplingParams
from tests.console.api.conftest import wait_until

QUESTION = [{"role": "user", "content": "0 1 2 3 4 5"}]
LONG = SamplingParams(temperature=0, max_new_tokens=1900, ignore_eos=True)


def occupy_engine(api):
    """One long request running and one waiting, with room for no more (batch 1, queue 1)."""
    api.core.configure_engine(api.admin, max_batch_size=1, queue_limit=1)
    running = api.core.chat(api.admin, QUESTION, LONG)
    wait_until(lambda: api.core.engine_snapshot(api.admin).running == 1)
    waiting = api.core.chat(api.admin, QUESTION, LONG)
    return [running, waiting]


def test_a_full_queue_is_503_with_retry_after(api):
    blockers = occupy_engine(api)
    try:
        response = httpx.post(f"{api.base_url}/chat/completions", headers=api.headers(),
                              json={"model": "tiny-llama", "messages": QUESTION, "max_tokens": 2})
    finally:
        for handle in blockers:
            handle.cancel()

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "engine_busy"


def test_the_official_client_retries_a_503_until_served(api):
    blockers = occupy_engine(api)
    refusals = []

    def free_the_engine_after_a_refusal(response: httpx.Response) -> None:
        if response.status_code == 503:
            refusals.append(response)
            for handle in blockers:
                handle.cancel()

    client = api.client(max_retries=3, http_client=httpx.Client(event_hooks={"response": [free_the_engine_after_a_refusal]}))
    reply = client.chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=2)

    assert len(refusals) == 1
    assert reply.usage.completion_tokens >= 1


def test_a_client_that_disconnects_mid_stream_frees_its_slot(api):
    before = api.core.engine_snapshot(api.admin).requests_cancelled
    body = {"model": "tiny-llama", "messages": QUESTION, "max_tokens": 1900, "ignore_eos": True,
            "stream": True}
    with httpx.stream("POST", f"{api.base_url}/chat/completions", json=body, headers=api.headers()) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    # leaving the block closes the connection with the reply unfinished

    wait_until(lambda: api.core.engine_snapshot(api.admin).requests_cancelled == before + 1)
    assert api.core.engine_snapshot(api.admin).running == 0


def test_a_client_that_disconnects_while_queued_is_cancelled(api):
    blockers = occupy_engine(api)
    api.core.configure_engine(api.admin, queue_limit=2)
    before = api.core.engine_snapshot(api.admin).requests_cancelled
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{api.base_url}/chat/completions", headers=api.headers(), timeout=0.5,
                       json={"model": "tiny-llama", "messages": QUESTION, "max_tokens": 2})
        wait_until(lambda: api.core.engine_snapshot(api.admin).waiting == 1)
    finally:
        for handle in blockers:
            handle.cancel()
    wait_until(lambda: api.core.engine_snapshot(api.admin).requests_cancelled >= before + 3)


def test_while_a_model_loads_health_and_completions_are_503(api, tiny_model_dir):
    in_progress, release = threading.Event(), threading.Event()

    def hold(_fraction, _message) -> None:
        in_progress.set()
        release.wait(30)

    loader = threading.Thread(target=api.core.load_model, args=(api.admin, ModelSpec(str(tiny_model_dir), "fp32", "cpu"), hold))
    loader.start()
    try:
        assert in_progress.wait(30)
        health = httpx.get(f"{api.root}/health")
        with pytest.raises(openai.InternalServerError) as refused:
            api.client().chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=2)
    finally:
        release.set()
        loader.join(60)

    assert health.status_code == 503 and health.json()["error"]["message"] == "Loading model"
    assert refused.value.status_code == 503 and refused.value.response.headers["retry-after"] == "1"
    assert httpx.get(f"{api.root}/health").status_code == 200


def test_no_model_loaded_is_503_on_health(api):
    api.core.unload_model(api.admin)

    response = httpx.get(f"{api.root}/health")

    assert response.status_code == 503 and response.json()["error"]["code"] == "model_not_loaded"


def test_an_error_after_streaming_began_is_a_data_chunk_then_done(api):
    body = {"model": "tiny-llama", "messages": QUESTION, "max_tokens": 1900, "ignore_eos": True,
            "stream": True}
    with httpx.stream("POST", f"{api.base_url}/chat/completions", json=body, headers=api.headers()) as response:
        lines = (line for line in response.iter_lines() if line)
        assert next(lines).startswith("data: {")
        api.core.unload_model(api.admin)  # the engine ends every running request with an error
        rest = list(lines)

    assert '"error"' in rest[-2] and "unloaded" in rest[-2]
    assert rest[-1] == "data: [DONE]"
