"""A bounded LRU cache of finished deterministic replies (temperature 0): same model, prompt and settings."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from engine.request import FinishReason
from engine.sampling_params import SamplingParams

CACHEABLE = {FinishReason.END_OF_TEXT, FinishReason.STOP_STRING, FinishReason.MAX_TOKENS, FinishReason.CONTEXT_FULL}


@dataclass(frozen=True)
class CachedReply:
    text: str
    finish_reason: FinishReason
    completion_tokens: int


class ResponseCache:
    def __init__(self, capacity: int = 256, enabled: bool = True):
        self.capacity = capacity
        self.enabled = enabled
        self._entries: OrderedDict[tuple, CachedReply] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(model_key: tuple, prompt_ids: list[int], params: SamplingParams) -> tuple | None:
        if not params.greedy:
            return None
        # The seed does not change a greedy reply.
        return model_key, tuple(prompt_ids), params.repetition_penalty, params.max_new_tokens, params.stop, params.ignore_eos

    def get(self, key: tuple | None) -> CachedReply | None:
        if key is None or not self.enabled:
            return None
        with self._lock:
            reply = self._entries.get(key)
            if reply is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return reply

    def put(self, key: tuple | None, reply: CachedReply) -> None:
        if key is None or not self.enabled or reply.finish_reason not in CACHEABLE:
            return
        with self._lock:
            self._entries[key] = reply
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
