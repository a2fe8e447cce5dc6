"""What a test scripts the fake OpenAI server with (replies, faults) and what it reads back (requests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Reply = Callable[[list[dict[str, Any]]], str]


def echo(messages: list[dict[str, Any]]) -> str:
    """The default reply: repeat the last user message, so a test can see what reached the server."""
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    return f"You said: {last}"


@dataclass(frozen=True)
class Fault:
    """What the server does instead of answering one chat request; build with the class methods."""

    kind: Literal["status", "hang", "malformed", "no_choices", "drop"]
    status: int = 500  # kind=status: the HTTP status answered
    retry_after: str | None = None  # kind=status: the Retry-After header (seconds), when set
    seconds: float = 30.0  # kind=hang: how long the request sits unanswered; shutdown cuts it short
    after_tokens: int = 0  # kind=drop: tokens streamed before the connection is cut

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1) -> Fault:
        return cls("status", status=429, retry_after=_seconds(retry_after))

    @classmethod
    def server_error(cls, status: int = 500, *, retry_after: float | None = None) -> Fault:
        return cls("status", status=status, retry_after=_seconds(retry_after))

    @classmethod
    def unauthorized(cls, status: int = 401) -> Fault:
        return cls("status", status=status)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Sit on the request longer than the client's timeout, then answer normally (to no one)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """A 200 whose JSON body (or SSE chunk, when streaming) does not parse."""
        return cls("malformed")

    @classmethod
    def drop(cls, after_tokens: int = 0) -> Fault:
        """Hang up mid-reply: a stream is cut after `after_tokens` tokens, a plain reply before any byte."""
        return cls("drop", after_tokens=after_tokens)

    @classmethod
    def no_choices(cls) -> Fault:
        """A well-formed 200 with an empty `choices` list, as some broken proxies send."""
        return cls("no_choices")


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it, for assertions."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None for GET / unparsable bodies
    received_at: float = field(default_factory=time.monotonic)
