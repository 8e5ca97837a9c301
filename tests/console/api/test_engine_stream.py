"""The bridge from the scheduler thread to an event loop."""

from __future__ import annotations

import asyncio

from engine import SamplingParams
from console.api.engine_stream import EngineStream


def test_events_for_a_closed_loop_cancel_the_request_and_spare_the_engine(loaded_core):
    core, admin = loaded_core
    loop = asyncio.new_event_loop()
    stream = loop.run_until_complete(_make_stream())
    loop.close()  # as when the server stopped while the request still ran
    params = SamplingParams(temperature=0, max_new_tokens=1900, ignore_eos=True)

    handle = core.chat(admin, [{"role": "user", "content": "hello"}], params, on_event=stream.on_event)
    stream.attach(handle)

    assert handle.result(timeout=60).finish_reason.value == "cancelled"
    after = core.chat(admin, [{"role": "user", "content": "hello"}], SamplingParams(max_new_tokens=2))
    assert after.result(timeout=60).ok  # the scheduler thread still runs


async def _make_stream() -> EngineStream:
    return EngineStream()
