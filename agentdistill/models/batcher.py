"""Batching of concurrent requests: callers from different threads share one forward pass.

A GPU decodes a batch of 8 about as fast as a batch of 1, so requests that arrive together (a server,
parallel agents, a benchmark runner's workers) should run together. There is no background thread:
the first caller to find the batcher idle becomes the runner, waits a few milliseconds for company,
runs a batch of compatible requests, hands every caller its own result and lets the next one in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")


@dataclass(eq=False)
class _Ticket(Generic[R, T]):
    request: R
    key: Hashable  # only requests with equal keys may share a batch (same sampling settings)
    result: T | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class BatchStats:
    """Running totals: how much batching actually happened."""

    batches: int = 0
    requests: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches had it


class RequestBatcher(Generic[R, T]):
    """Runs `run(requests) -> results` (same order) on batches of up to `max_batch` compatible requests.

    `window_s` is how long a runner waits for more requests before it starts: long enough for threads
    released together to arrive, short next to a generate call (milliseconds against a second or more).
    """

    def __init__(
        self,
        run: Callable[[Sequence[R]], Sequence[T]],
        *,
        key: Callable[[R], Hashable],
        max_batch: int = 8,
        window_s: float = 0.005,
    ) -> None:
        if max_batch < 1 or window_s < 0:
            raise ValueError(f"max_batch must be >= 1 and window_s >= 0, got {max_batch} and {window_s}")
        self._run, self._key = run, key
        self.max_batch = max_batch  # more requests than this wait for the next batch
        self.window_s = window_s  # how long a runner collects before running
        self.stats = BatchStats()
        self._pending: list[_Ticket[R, T]] = []
        self._busy = False  # a runner is collecting or running
        self._cond = threading.Condition()

    def submit(self, request: R) -> T:
        """Run `request` in some batch and return its result; an exception from `run` is raised in every caller."""
        ticket: _Ticket[R, T] = _Ticket(request, self._key(request))
        with self._cond:
            self._pending.append(ticket)
            self._cond.notify_all()  # a collecting runner may be waiting for exactly this request
            while not ticket.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                try:
                    batch = self._collect()
                    self._cond.release()
                    try:
                        self._execute(batch)
                    finally:
                        self._cond.acquire()
                finally:
                    self._busy = False
                    self._cond.notify_all()
        if ticket.error is not None:
            raise ticket.error
        return ticket.result  # type: ignore[return-value]  # set by _execute when done is True

    def _collect(self) -> list[_Ticket[R, T]]:
        """Wait up to window_s for a full batch, then take the oldest request and those compatible with it."""
        deadline = time.monotonic() + self.window_s
        while (left := deadline - time.monotonic()) > 0 and self._compatible_count() < self.max_batch:
            self._cond.wait(left)
        head = self._pending[0].key
        batch = [t for t in self._pending if t.key == head][: self.max_batch]
        taken = set(map(id, batch))
        self._pending = [t for t in self._pending if id(t) not in taken]
        return batch

    def _compatible_count(self) -> int:
        head = self._pending[0].key
        return sum(1 for t in self._pending if t.key == head)

    def _execute(self, batch: list[_Ticket[R, T]]) -> None:
        """Run one batch outside the condition's lock, so callers can queue the next batch meanwhile."""
        try:
            results = self._run([t.request for t in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch runner returned {len(results)} results for {len(batch)} requests")
            for ticket, result in zip(batch, results, strict=True):
                ticket.result = result
        except BaseException as exc:  # every waiting caller must wake up and see the failure, not hang
            for ticket in batch:
                ticket.error = exc
        finally:
            for ticket in batch:
                ticket.done = True
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
