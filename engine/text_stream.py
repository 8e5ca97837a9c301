"""Turning a growing list of token ids into text deltas, and holding back text that may become a stop string."""

from __future__ import annotations


class IncrementalDetokenizer:
    """Decodes token ids one at a time without cutting multi-byte characters or word-initial spaces.

    Decoding a window of recent tokens and comparing it with the same window minus the newest token
    (the approach of text-generation-inference) keeps each step cheap and the output exact.
    """

    def __init__(self, tokenizer, prompt_ids: list[int]):
        self._tokenizer = tokenizer
        self._ids: list[int] = list(prompt_ids[-4:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._tokenizer.decode(
            self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=True
        )
        new_text = self._tokenizer.decode(self._ids[self._prefix_offset :], skip_special_tokens=True)
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return delta
        return ""


class StopStringMatcher:
    """Finds stop strings in streamed text; text that could still be the start of one is held back."""

    def __init__(self, stop_strings: tuple[str, ...]):
        self._stops = tuple(s for s in stop_strings if s)
        self._pending = ""
        self.text = ""  # everything released so far

    def feed(self, delta: str) -> tuple[str, bool]:
        """Return (text safe to release now, whether a stop string was hit)."""
        if not self._stops:
            self.text += delta
            return delta, False
        self._pending += delta
        hits = [(self._pending.find(s), s) for s in self._stops if s in self._pending]
        if hits:
            position = min(index for index, _ in hits)
            released = self._pending[:position]
            self._pending = ""
            self.text += released
            return released, True
        hold = self._longest_stop_prefix_suffix(self._pending)
        released = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(self._pending) - hold :]
        self.text += released
        return released, False

    def flush(self) -> str:
        released, self._pending = self._pending, ""
        self.text += released
        return released

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:length]):
                    longest = length
                    break
        return longest
