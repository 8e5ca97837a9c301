"""Raw HTTP with bodies no client library would send: each is a 4xx in OpenAI's envelope, and the engine keeps
serving afterwards."""

from __future__ import annotations

import json

import httpx
import pytest

CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}



@pytest.fixture
def api(module_api):
    return module_api


def post(api, body: bytes | dict, path: str = "/chat/completions", **headers) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{api.base_url}{path}", content=content,
                      headers={**api.headers(), "Content-Type": "application/json", **headers}, timeout=30)


def error_of(response: httpx.Response) -> dict:
    return response.json()["error"]


def test_malformed_json_is_400_invalid_json(api):
    response = post(api, b'{"model": "tiny-llama", "messages": [')

    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"


def test_non_utf8_body_is_400(api):
    response = post(api, b'{"model": "tiny-\xff\xfe"}')

    assert response.status_code == 400 and error_of(response)["code"] == "invalid_encoding"


def test_a_json_array_body_is_400(api):
    assert post(api, b"[1, 2]").status_code == 400


@pytest.mark.parametrize(("change", "param"), [
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": 7}, "temperature"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"stream": "yes"}, "stream"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": []}, "messages"),
    ({"stop": ["", "x"]}, "stop"),
    ({"n": 2}, "n"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": -1.0}, "frequency_penalty"),
    ({"logprobs": True}, "logprobs"),
    ({"wild_guess": 1}, "wild_guess"),
])
def test_invalid_parameter_is_400_naming_it(api, change, param):
    response = post(api, {**CHAT, **change})

    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assert error_of(response)["type"] == "invalid_request_error"


def test_missing_model_is_400_naming_it(api):
    response = post(api, {"messages": CHAT["messages"]})

    assert response.status_code == 400 and error_of(response)["param"] == "model"


def test_huge_max_tokens_is_400_with_the_context_window(api):
    response = post(api, {**CHAT, "max_tokens": 10**12})

    assert response.status_code == 400
    assert error_of(response)["param"] == "max_tokens" and "2,048" in error_of(response)["message"]


def test_a_prompt_longer_than_the_context_is_context_length_exceeded(api):
    long_prompt = " ".join(str(n % 20) for n in range(5000))

    response = post(api, {**CHAT, "messages": [{"role": "user", "content": long_prompt}]})

    assert response.status_code == 400
    assert error_of(response)["code"] == "context_length_exceeded"
    assert "2048" in error_of(response)["message"]


def test_a_million_messages_is_413(api):
    body = b'{"model": "tiny-llama", "messages": [' + b",".join([b'{"role":"user","content":"a"}'] * 1_000_000) + b"]}"

    assert post(api, body).status_code == 413


def test_too_many_messages_within_the_size_limit_is_400(api):
    response = post(api, {**CHAT, "messages": [{"role": "user", "content": "a"}] * 5000})

    assert response.status_code == 400 and error_of(response)["param"] == "messages"


def test_an_image_part_is_refused_by_name(api):
    parts = [{"type": "image_url", "image_url": {"url": "http://example/cat.png"}}]

    response = post(api, {**CHAT, "messages": [{"role": "user", "content": parts}]})

    assert response.status_code == 400 and "image_url" in error_of(response)["message"]


def test_unknown_path_is_404_in_the_envelope(api):
    response = httpx.get(f"{api.base_url}/engines", headers=api.headers())

    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_the_engine_keeps_serving_after_bad_requests(api):
    for body in (b"{", b'{"model": 5}', b"\xff", json.dumps({**CHAT, "max_tokens": -1}).encode()):
        assert 400 <= post(api, body).status_code < 500

    response = post(api, CHAT)

    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] >= 1
