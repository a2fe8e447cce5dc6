"""One chat turn's events as an append-only log: a worker thread publishes, any number of SSE readers follow.

A reader may connect late (a fast turn can be over before the browser's EventSource opens) or reconnect after a
network blip (EventSource sends `Last-Event-ID`): it replays the log from where it stands, then waits for more.
Waiting costs no thread: the publisher wakes each reader's asyncio loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

KEEPALIVE_S = 15.0  # an SSE comment this often keeps idle proxies and browsers from dropping a slow turn


class TurnEvents:
    """The events of one turn, in order; `close` comes with the last one (an `answer` or an `error`)."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wakers: set[Callable[[], None]] = set()
        self._closed = False
        self._done = threading.Event()

    def publish(self, kind: str, *, last: bool = False, **data: Any) -> dict[str, Any]:
        """Append an event stamped with the server's monotonic clock (the latency benchmark reads `t`)."""
        event = {"kind": kind, "t": time.monotonic(), **data}
        with self._lock:
            self._events.append(event)
            self._closed = self._closed or last
            wakers = list(self._wakers)
        if last:
            self._done.set()
        for wake in wakers:
            wake()
        return event

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def wait_closed(self, timeout: float) -> bool:
        """Block until the last event is in (True) or `timeout` seconds pass (False)."""
        return self._done.wait(timeout)

    def since(self, index: int) -> tuple[list[dict[str, Any]], bool]:
        """The events from `index` on, and whether the log is closed (read together, so none is missed)."""
        with self._lock:
            return self._events[index:], self._closed

    async def follow(self, start: int = 0, *, keepalive_s: float = KEEPALIVE_S) -> AsyncIterator[str]:
        """SSE frames of the events from `start` on, then of each new one as it lands, until the log closes."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # the reader's loop has shut down; it no longer listens
                pass

        with self._lock:
            self._wakers.add(wake)
        try:
            index = max(start, 0)
            while True:
                ready.clear()  # before reading: a publish after the read sets it again, so none is missed
                batch, closed = self.since(index)
                for event in batch:
                    yield sse_frame(index, event)
                    index += 1
                if closed:
                    return
                if not batch:
                    try:
                        await asyncio.wait_for(ready.wait(), keepalive_s)
                    except TimeoutError:
                        yield ": keepalive\n\n"
        finally:
            with self._lock:
                self._wakers.discard(wake)


def sse_frame(index: int, event: dict[str, Any]) -> str:
    """One Server-Sent Event: the log index as its id (for Last-Event-ID), the kind as its name, JSON data.

    The JSON is one line (json.dumps escapes newlines inside strings), so the frame needs one `data:` line."""
    data = json.dumps(event, ensure_ascii=False, default=str)
    return f"id: {index}\nevent: {event['kind']}\ndata: {data}\n\n"
