"""The official openai client against the real server: answers, streams, usage, finish reasons, typed errors."""

from __future__ import annotations

import httpx
import openai
import pytest

QUESTION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "hello world"}]



@pytest.fixture
def api(module_api):
    return module_api


def test_chat_completion_answers_with_usage_and_finish_reason(api):
    reply = api.client().chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=8, temperature=0)

    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens >= 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_max_tokens_reached_is_finish_reason_length(api):
    reply = api.client().chat.completions.create(model="tiny-llama", messages=QUESTION, max_completion_tokens=3,
                                                 temperature=0, extra_body={"top_k": 1})

    assert reply.usage.completion_tokens <= 3
    assert reply.choices[0].finish_reason == "length" or reply.usage.completion_tokens < 3


def test_streamed_chat_has_role_first_one_finish_reason_and_usage_chunk(api):
    stream = api.client().chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=6, temperature=0,
                                                  stream=True, stream_options={"include_usage": True})
    chunks = list(stream)

    content = [chunk for chunk in chunks if chunk.choices]
    assert content[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in content if c.choices[0].finish_reason] in (["stop"], ["length"])
    assert content[-1].choices[0].finish_reason is not None
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


def test_stream_ends_with_done(api):
    body = {"model": "tiny-llama", "messages": QUESTION, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{api.base_url}/chat/completions", json=body, headers=api.headers()) as response:
        lines = [line for line in response.iter_lines() if line]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_plain_completion_answers_a_prompt(api):
    reply = api.client().completions.create(model="tiny-llama", prompt="The capital of France is", max_tokens=5)

    assert reply.object == "text_completion"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0


def test_streamed_plain_completion_carries_text_pieces(api):
    pieces = list(api.client().completions.create(model="tiny-llama", prompt="0 1 2 3", max_tokens=5, stream=True))

    assert pieces[-1].choices[0].finish_reason in ("stop", "length")
    assert sum(len(piece.choices[0].text) for piece in pieces) > 0


def test_timings_are_added_only_when_asked(api):
    plain = api.client().chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=3)
    timed = api.client().chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=3,
                                                 extra_body={"timings": True})

    assert getattr(plain, "timings", None) is None
    assert timed.timings["predicted_n"] == timed.usage.completion_tokens
    assert timed.timings["time_to_first_token_ms"] > 0


@pytest.fixture
def aliases(api):
    """Aliases for one test, as the admin sets them (`api.model_aliases`)."""
    def set_aliases(mapping: dict[str, str]) -> None:
        api.core.settings.set(api.admin, "api.model_aliases", mapping)
        api.core.api.config = api.core.api.config.changed(aliases=api.core.settings.get("api.model_aliases"))

    yield set_aliases
    set_aliases({})


def test_models_lists_the_loaded_model_and_its_aliases(api, aliases):
    aliases({"gpt-4o-mini": "tiny-llama", "other": "not-loaded"})

    listed = api.client().models.list()

    assert [model.id for model in listed.data] == ["tiny-llama", "gpt-4o-mini"]
    assert listed.data[0].object == "model" and listed.data[0].owned_by
    assert api.client().models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


def test_an_alias_answers_as_the_model_it_names(api, aliases):
    aliases({"gpt-4o-mini": "tiny-llama"})

    reply = api.client().chat.completions.create(model="gpt-4o-mini", messages=QUESTION, max_tokens=2)

    assert reply.model == "gpt-4o-mini"


def test_unknown_model_is_404_listing_what_is_served(api):
    with pytest.raises(openai.NotFoundError) as refused:
        api.client().chat.completions.create(model="gpt-4", messages=QUESTION, max_tokens=2)

    assert "tiny-llama" in refused.value.message
    assert refused.value.body["code"] == "model_not_found" and refused.value.body["param"] == "model"


def test_missing_key_is_refused_with_401(api):
    from openai import OpenAI

    client = OpenAI(base_url=api.base_url, api_key="llmc_not-a-key", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="tiny-llama", messages=QUESTION, max_tokens=2)
    assert "not valid" in refused.value.message


def test_developer_role_is_accepted_as_the_system_instruction(api):
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hello"}]

    reply = api.client().chat.completions.create(model="tiny-llama", messages=messages, max_tokens=2)

    assert reply.usage.prompt_tokens > 0


def test_health_needs_no_key(api):
    response = httpx.get(f"{api.root}/health")

    assert response.status_code == 200 and response.json()["model"] == "tiny-llama"
