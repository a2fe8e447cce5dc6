"""A deterministic model for tests: replays scripted replies and keeps what it was asked."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agentdistill.errors import ModelNotFound
from agentdistill.models.base import Completion, Message, ModelOptions, StopStreamer, TokenCallback, Usage

Reply = str | Callable[[Sequence[Message]], str]


class ScriptExhausted(AssertionError):
    """The code under test asked the scripted model more often than the script allows: a test failure."""


class ScriptedModel:
    """Replies in order; a reply may be a function of the messages. `history` keeps every prompt seen.

    Stop sequences are applied exactly as a real backend must, so tests exercise the cut.
    For n > 1, consecutive replies fill the samples.
    """

    def __init__(self, replies: Sequence[Reply], *, spec: str = "scripted:inline", repeat_last: bool = False) -> None:
        self.spec = spec
        self._replies = list(replies)
        self._next = 0
        self._repeat_last = repeat_last
        self._lock = threading.Lock()
        self.history: list[list[Message]] = []
        self.calls: list[dict] = []

    @classmethod
    def from_file(cls, path: str, options: ModelOptions | None = None) -> ScriptedModel:
        """`scripted:FILE`: a JSON list of reply strings, or JSONL with one {"reply": ...} per line."""
        file = Path(path)
        if not file.is_file():
            raise ModelNotFound(f"scripted model file {path!r} does not exist: give a JSON list of replies.")
        text = file.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            replies = json.loads(text)
        else:
            replies = [json.loads(line)["reply"] for line in text.splitlines() if line.strip()]
        return cls(replies, spec=f"scripted:{path}")

    def _take(self, messages: Sequence[Message]) -> str:
        with self._lock:
            if self._next >= len(self._replies):
                if not (self._repeat_last and self._replies):
                    raise ScriptExhausted(f"scripted model asked for reply {self._next + 1} of {len(self._replies)}")
                reply = self._replies[-1]
            else:
                reply = self._replies[self._next]
                self._next += 1
        return reply(messages) if callable(reply) else reply

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        snapshot = [dict(m) for m in messages]
        self.history.append(snapshot)  # type: ignore[arg-type]
        self.calls.append({"stop": list(stop), "max_tokens": max_tokens, "temperature": temperature, "n": n})
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        out = []
        for _ in range(n):
            streamer = StopStreamer(stop, on_token if n == 1 else None)
            for word in _chunks(self._take(snapshot)):
                if streamer.feed(word):
                    break
            text = streamer.finish()
            out.append(Completion(text=text, usage=Usage(prompt_tokens, len(text.split())), latency_s=0.0))
        return out

    @property
    def remaining(self) -> int:
        return len(self._replies) - self._next


def _chunks(text: str) -> list[str]:
    """Split into word-ish deltas (whitespace kept) so streaming and stop handling see realistic pieces."""
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch.isspace():
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out
