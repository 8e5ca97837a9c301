"""A key's usage is counted before the response's last byte: a client that has its answer and then asks for
the usage (the API tab, a script) finds its request counted. It used to be counted after the response ended,
and the API tab's test saw 0 on a slow machine."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from console.api.app import AccessLogMiddleware


class Usage:
    def __init__(self):
        self.records = []

    def record(self, key, prompt_tokens, completion_tokens, error=False):
        self.records.append((key, prompt_tokens, completion_tokens, error))


def run(inner, messages_seen):
    usage = Usage()
    middleware = AccessLogMiddleware(inner, SimpleNamespace(usage=usage))

    async def send(message):
        messages_seen.append((message["type"], message.get("more_body", False), list(usage.records)))

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "scheme": "http", "client": ("127.0.0.1", 1)}
    asyncio.run(middleware(scope, receive, send))
    return usage


def test_a_finished_reply_is_counted_before_its_last_byte():
    async def reply(scope, receive, send):
        scope["state"]["log"] = {"key": 7, "prompt_tokens": 3, "completion_tokens": 2}
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    seen = []
    usage = run(reply, seen)
    last_body = [records for kind, more, records in seen if kind == "http.response.body" and not more][0]
    assert last_body == [(7, 3, 2, False)]  # already counted when the last byte went out
    assert usage.records == [(7, 3, 2, False)]  # and once only


def test_a_response_whose_tokens_are_unknown_at_its_end_is_counted_after_it():
    async def refused(scope, receive, send):
        scope["state"]["log"] = {"key": 7}
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    usage = run(refused, [])
    assert usage.records == [(7, 0, 0, True)]
