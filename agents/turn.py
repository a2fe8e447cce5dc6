"""`run_turn`: ask a graph one question and summarise the recorded run (chat, ask, demo and benchmarks)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agentdistill.memory.trajectories import TrajectoryStore


@dataclass
class Turn:
    """The outcome of one question, as `ask --json` prints it."""

    answer: str | None
    status: str
    run_id: str
    steps: int  # model calls
    tool_calls: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    error: str | None

    def to_json(self) -> dict[str, Any]:
        tokens = self.prompt_tokens + self.completion_tokens
        return {**self.__dict__, "tokens": tokens, "latency_s": round(self.latency_s, 3)}


def run_turn(graph: Any, store: TrajectoryStore, question: str, config: dict[str, Any] | None = None) -> Turn:
    """Ask `graph` one question and summarise the recorded run (steps and tokens come from the store)."""
    started = time.perf_counter()
    out = graph.invoke({"question": question}, config=config)
    latency = time.perf_counter() - started
    run = store.get(out["run_id"])
    return Turn(
        answer=out.get("answer"), status=out.get("status", run.status), run_id=run.id, steps=run.model_calls,
        tool_calls=sum(1 for s in run.steps if s.kind == "tool"), prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens, latency_s=latency,
        error=out.get("error") or (run.error.message if run.error else None),
    )  # fmt: skip
