"""`llm-console serve` as its own process: it loads the model, answers the official client, serves /metrics in
Prometheus' format, logs one line per request, and on SIGTERM lets a running stream finish, then exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.access_helpers import TEST_ADMIN, TEST_PASSWORD, admin_core

pytestmark = pytest.mark.slow  # a process of its own: imports torch and transformers again (seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(data_dir, tiny_model_dir):
    """`serve` in its own process on a free port, once healthy; with a key of the administrator."""
    core, admin = admin_core(data_dir)
    secret = core.api.keys.create(admin, "admin", "serve test").secret
    core.shutdown()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "serve", "--model", str(tiny_model_dir), "--precision", "fp32",
         "--device", "cpu", "--port", str(port), "--grace", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LLM_CONSOLE_DATA_DIR": str(data_dir), "LLM_CONSOLE_USER": TEST_ADMIN,
             "LLM_CONSOLE_PASSWORD": TEST_PASSWORD, "LLM_CONSOLE_COMPILE": "off"},
    )
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:  # the process starts, listens, then loads: wait for its health to turn 200
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                return process, root, secret
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve did not become healthy"
        threading.Event().wait(0.2)


def stop(process) -> None:
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def served(shared_data_dir, tiny_model_dir):
    """One `serve` for the tests that only ask it questions."""
    process, root, secret = start_serve(shared_data_dir, tiny_model_dir)
    yield process, root, secret
    stop(process)


@pytest.fixture
def served_alone(isolated_data_dir, tiny_model_dir):
    """A `serve` of the test's own, for the test that shuts it down."""
    process, root, secret = start_serve(isolated_data_dir, tiny_model_dir)
    yield process, root, secret
    stop(process)


def test_serve_answers_the_official_client(served):
    from openai import OpenAI

    process, root, secret = served
    reply = OpenAI(base_url=f"{root}/v1", api_key=secret, max_retries=0).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "hello"}], max_tokens=3)

    assert reply.usage.completion_tokens >= 1


def test_serve_metrics_parse_as_prometheus_text(served):
    _process, root, secret = served
    response = httpx.get(f"{root}/metrics", headers={"Authorization": f"Bearer {secret}"})

    names = {family.name for family in text_string_to_metric_families(response.text)}

    assert response.status_code == 200
    assert {"llm_console_requests_running", "llm_console_time_to_first_token_seconds"} <= names


def test_sigterm_lets_a_running_stream_finish_then_exits_zero(served_alone):
    process, root, secret = served_alone
    body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "0 1 2"}], "max_tokens": 100,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{root}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {secret}"}) as response:
        lines = (line for line in response.iter_lines() if line)
        assert next(lines).startswith("data: {")
        process.send_signal(signal.SIGTERM)
        rest = list(lines)
    _out, err = process.communicate(timeout=60)

    assert rest[-1] == "data: [DONE]" and '"completion_tokens":100' in rest[-2]
    assert process.returncode == 0
    assert '"POST /v1/chat/completions" 200' in err and "completion_tokens=100" in err
    assert "[serve] stopped" in err
