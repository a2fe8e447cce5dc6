"""Generation for `agentdistill serve`: calls on worker threads, a bounded number at once, and the SSE stream.

A generation stops at its next token once its client hangs up or the server is stopping (`ClientGone` raised
from the token callback), so an abandoned request never holds the model for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from agentdistill.distill.serve_reply import (
    GenerateCall,
    choice_reply,
    describe_error,
    error_body,
    sse_event,
    usage_of,
)
from agentdistill.models.base import ChatModel, Completion, TokenCallback

log = logging.getLogger(__name__)


class ClientGone(Exception):
    """Raised from the token callback once a streaming client has hung up, to end its generation early."""


class GenerateRunner:
    """Runs generate calls on worker threads, at most `max_concurrent` at once."""

    def __init__(self, model: ChatModel, max_concurrent: int) -> None:
        self.model = model
        # A thread semaphore, taken inside the worker: a cancelled request still holds it until its
        # generate returns, so an abandoned call never overlaps the next one.
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def generate(self, call: GenerateCall, on_token: TokenCallback | None = None) -> list[Completion]:
        with self._slots:
            return self.model.generate(
                call.messages,
                stop=call.stop,
                max_tokens=call.max_tokens,
                temperature=call.temperature,
                n=call.n,
                seed=call.seed,
                on_token=on_token,
            )


async def sse_stream(
    runner: GenerateRunner, call: GenerateCall, meta: dict[str, Any], include_usage: bool, stopping: threading.Event
) -> AsyncIterator[str]:
    """Server-sent events: role chunk, content deltas, a finish chunk per choice, usage, `[DONE]`.

    With n == 1 the deltas are the model's own as it produces them; n > 1 samples cannot stream
    (ChatModel streams one completion), so each choice's text comes in one chunk once all are done.
    """
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    gone = threading.Event()

    def put(kind: str, payload: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
            loop.call_soon_threadsafe(events.put_nowait, (kind, payload))

    def on_token(delta: str) -> None:
        _still_there(delta)
        put("delta", delta)

    def _still_there(delta: str) -> None:
        if gone.is_set() or stopping.is_set():
            raise ClientGone

    def work() -> None:
        try:
            put("done", runner.generate(call, on_token if call.streams_tokens else _still_there))
        except ClientGone:
            return
        except Exception as exc:  # reported to the client as an error event, like vLLM does mid-stream
            log.exception("model %s failed on a streaming chat request", meta["model"])
            put("error", exc)

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return sse_event({**meta, "object": "chat.completion.chunk", "choices": choices, **extra})

    threading.Thread(target=work, name="serve-generate", daemon=True).start()
    try:
        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        sent = ""
        while True:
            kind, payload = await events.get()
            if kind == "error":
                yield sse_event({"error": error_body(500, describe_error(payload))})
                yield "data: [DONE]\n\n"
                return
            if kind == "done":
                completions: list[Completion] = payload
                break
            sent += payload
            yield chunk([{"index": 0, "delta": {"content": payload}, "finish_reason": None}])
        for i, completion in enumerate(completions):
            message, finish = choice_reply(completion, call)
            text = message["content"] or ""
            rest = text[len(sent) :] if i == 0 and text.startswith(sent) else text
            if i > 0:
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            if rest:
                yield chunk([{"index": i, "delta": {"content": rest}, "finish_reason": None}])
            if calls := message.get("tool_calls"):
                deltas = [{"index": j, **c} for j, c in enumerate(calls)]
                yield chunk([{"index": i, "delta": {"tool_calls": deltas}, "finish_reason": None}])
            yield chunk([{"index": i, "delta": {}, "finish_reason": finish}])
        if include_usage:
            yield chunk([], usage=usage_of(completions))
        yield "data: [DONE]\n\n"
    finally:
        gone.set()  # the client hung up or the stream ended: a still-running generate stops at its next token
