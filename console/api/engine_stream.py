"""The bridge from the engine's scheduler thread to the API's event loop: a request's text pieces and result,
delivered into an asyncio queue. Cancelling (a client that went away) frees the request's batch slot at the
engine's next step.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from engine import GenerationResult, RequestHandle, StreamEvent


class EngineStream:
    """Create it on the event loop, pass `on_event` to the engine's submit, then `attach` the handle."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.handle: RequestHandle | None = None
        self.result: GenerationResult | None = None
        self._pending_text: list[str] = []
        self.finished = False  # the API has accounted for its end (console/api/app.py)

    def on_event(self, event: StreamEvent) -> None:
        # Called on the scheduler thread: only hand the event over, never wait there, and never raise there
        # (it would end the scheduler). A server that stopped has closed its loop: nobody reads any more.
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:
            self.cancel()

    def attach(self, handle: RequestHandle) -> "EngineStream":
        self.handle = handle
        return self

    async def first(self) -> None:
        """Wait for the first piece of text or the end, so an error before any text can still set the status."""
        event = await self._events.get()
        if event.result is not None:
            self.result = event.result
        else:
            self._pending_text.append(event.text)

    async def pieces(self) -> AsyncIterator[str]:
        """The text pieces as they come; `result` is set when it ends."""
        while self._pending_text:
            yield self._pending_text.pop(0)
        while self.result is None:
            event = await self._events.get()
            if event.result is not None:
                self.result = event.result
            else:
                yield event.text

    async def finish(self) -> GenerationResult:
        async for _piece in self.pieces():
            pass
        assert self.result is not None
        return self.result

    def cancel(self) -> None:
        if self.handle is not None and not self.handle.done:
            self.handle.cancel()
