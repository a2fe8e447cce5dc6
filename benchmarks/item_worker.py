"""One benchmark item in a worker thread: its deadline, its recorder, and the result line it becomes.

Each item runs as one `run_turn` scored by a metric, or through a suite's `episode` function: a suite whose
items are conversations (the simulated recommendation sessions) drives the graph over as many turns as it
likes, scores the item itself and returns an `Outcome`; it is treated like a turn otherwise (deadline, errors,
resume), and every run the item recorded gets the item's score, so distill can select any turn of a good session.
Every failure becomes a result; the runner (runner.py) alone writes results and scores runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentdistill.agents.turn import run_turn
from agentdistill.benchmarks.cost import cost_usd
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.metrics import INSUFFICIENT
from agentdistill.benchmarks.results import RETRY, ItemResult, ItemStatus
from agentdistill.benchmarks.score import Score
from agentdistill.errors import AgentDistillError, ModelUnavailable, StoreError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback
from agentdistill.trajectory import Recorder, RunStatus, StepError

Metric = Callable[[str | None, Sequence[str]], Score]
# The main thread gives up on an item this long after its deadline: a worker between model calls notices the
# deadline itself first and reports the steps and tokens it got to; only a worker stuck in one call is abandoned.
GRACE_S = 0.5


class ItemTimeout(AgentDistillError):
    """Raised inside a worker before a model call once its item's time is up; recorded as status "timeout"."""

    kind = "timeout"  # what the trajectory store records as the run's error kind

    def __init__(self, seconds: float) -> None:
        super().__init__(f"item exceeded its {seconds:g} s budget: raise --item-timeout to give items more time.")


class RunAborted(AgentDistillError):
    """Raised inside a worker before a model call once the run was interrupted (Ctrl-C): it stops at once."""

    kind = "interrupted"

    def __init__(self) -> None:
        super().__init__("the benchmark run was interrupted; `bench run --resume --run-dir DIR` continues it.")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What a suite's episode function reports for one item, in place of `run_turn` + metric."""

    answer: str | None  # the last reply, shown in reports
    status: str  # ok | max_steps | error
    correct: bool
    metrics: Mapping[str, float]
    run_ids: tuple[str, ...]  # every run the item recorded, in order; each gets the item's score
    steps: int = 0  # model calls over all runs
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)  # extra facts for reports (a transcript), kept in results


Episode = Callable[[Item, Any, TrajectoryStore], Outcome]  # (item, graph, store) -> outcome; may raise like a turn


class Slot:
    """One item in flight: the main thread reads its deadline, the worker's model wrapper enforces it."""

    def __init__(self, item: Item, timeout_s: float, abort: threading.Event) -> None:
        self.item = item
        self.timeout_s = timeout_s
        self.abort = abort
        self.started: float | None = None  # monotonic; set by the worker when it picks the item up
        self.recorder: ItemRecorder | None = None
        self.abandoned = False  # the main thread recorded a timeout and stopped waiting for this item

    @property
    def deadline(self) -> float | None:
        return None if self.started is None else self.started + self.timeout_s

    @property
    def give_up_at(self) -> float | None:
        return None if self.started is None else self.started + self.timeout_s + GRACE_S

    def check(self) -> None:
        if self.abort.is_set():
            raise RunAborted()
        deadline = self.deadline
        if deadline is not None and time.monotonic() >= deadline:
            raise ItemTimeout(self.timeout_s)


class DeadlineModel:
    """A ChatModel that refuses to start a call once its item's time is up or the run was interrupted.

    A call already under way is not cut short (the backend's own timeout bounds it); the main thread stops
    waiting for the item at the deadline regardless, so a slow call delays nothing but its own thread.
    """

    def __init__(self, inner: ChatModel, slot: Slot) -> None:
        self.inner = inner
        self.slot = slot
        self.spec = inner.spec

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
        self.slot.check()
        return self.inner.generate(
            messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed, on_token=on_token
        )


class ItemRecorder(Recorder):
    """The per-item Recorder: puts the deadline in front of every model the graph wraps, remembers the run id.

    Every graph wraps its models through `recorder.wrap` exactly once, so this is the one place where the
    deadline reaches all of them without `make_graph` knowing about it. The check sits outside the recording
    wrapper: a refused call never happened, so it is not recorded as a model step.
    """

    def __init__(self, store: TrajectoryStore, *, agent: str, meta: Mapping[str, Any], slot: Slot) -> None:
        super().__init__(store, agent=agent, meta=meta)
        self.slot = slot
        self.run_ids: list[str] = []  # one per turn; a single-question item has one

    @property
    def run_id(self) -> str | None:
        return self.run_ids[-1] if self.run_ids else None

    def start(self, question: str, *, meta: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        started = super().start(question, meta=meta, run_id=run_id)
        self.run_ids.append(started)
        return started

    def finish(self, run_id: str, *, status: RunStatus, answer: str | None, error: StepError | None = None) -> None:
        if self.slot.abandoned and status != "error":  # keep the store in line with the "timeout" results line
            status, answer, error = "error", answer, StepError("timeout", str(ItemTimeout(self.slot.timeout_s)))
        super().finish(run_id, status=status, answer=answer, error=error)

    def wrap(self, model: ChatModel, *, role: str = "policy") -> ChatModel:
        return DeadlineModel(super().wrap(model, role=role), self.slot)


def _golds(item: Item) -> tuple[str, ...]:
    """What the metric compares against: an unanswerable item is right only when the agent abstains."""
    return item.answers if item.answerable else (INSUFFICIENT,)


def run_item(
    slot: Slot,
    graph: Any,
    store: TrajectoryStore,
    metric: Metric | None,
    episode: Episode | None,
    model_spec: str,
    prices: Mapping[str, Sequence[float]],
) -> ItemResult | None:
    """Run and score one item in a worker thread; every failure becomes a result, an interrupt becomes none."""
    item, golds = slot.item, _golds(slot.item)
    started = time.perf_counter()
    try:
        if episode is not None:
            return _episode_result(item, episode(item, graph, store), model_spec, prices)
        turn = run_turn(graph, store, item.question)
    except RunAborted:
        return None  # not finished: the item runs again on --resume
    except ItemTimeout as exc:
        return _failed(slot, "timeout", str(exc), time.perf_counter() - started, store, model_spec, prices)
    except Exception as exc:  # an agent crash is this item's result, never the run's end
        message = f"{type(exc).__name__}: {exc}"
        # The model was unreachable (a local engine died, an endpoint went away): not the agent's fault, so
        # `--resume` runs the item again (RETRY), and the new line replaces this one.
        retry = isinstance(exc, ModelUnavailable)
        return _failed(slot, "error", message, time.perf_counter() - started, store, model_spec, prices, retry=retry)
    assert metric is not None  # run_benchmark checked: no episode means a metric
    score = metric(turn.answer, golds)
    status: ItemStatus = turn.status if turn.status in ("ok", "max_steps", "error") else "error"  # type: ignore[assignment]
    return ItemResult(
        item_id=item.id, status=status, correct=score.correct and status != "error",
        metrics={"em": score.em, "f1": score.f1}, answer=turn.answer, gold=golds, run_id=turn.run_id,
        steps=turn.steps, tool_calls=turn.tool_calls, prompt_tokens=turn.prompt_tokens,
        completion_tokens=turn.completion_tokens, latency_s=turn.latency_s,
        cost_usd=cost_usd(model_spec, turn.prompt_tokens, turn.completion_tokens, prices),
        error=turn.error if status != "ok" else None, meta=_meta(item),
    )  # fmt: skip


def _episode_result(item: Item, outcome: Outcome, model_spec: str, prices: Mapping[str, Sequence[float]]) -> ItemResult:
    status: ItemStatus = outcome.status if outcome.status in ("ok", "max_steps", "error") else "error"  # type: ignore[assignment]
    meta = {**_meta(item), **outcome.meta}
    if len(outcome.run_ids) > 1:
        meta["run_ids"] = list(outcome.run_ids)
    return ItemResult(
        item_id=item.id, status=status, correct=outcome.correct and status != "error", metrics=dict(outcome.metrics),
        answer=outcome.answer, gold=_golds(item), run_id=outcome.run_ids[-1] if outcome.run_ids else None,
        steps=outcome.steps, tool_calls=outcome.tool_calls, prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens, latency_s=outcome.latency_s,
        cost_usd=cost_usd(model_spec, outcome.prompt_tokens, outcome.completion_tokens, prices),
        error=outcome.error if status != "ok" else None, meta=meta,
    )  # fmt: skip


def timeout_result(
    slot: Slot, store: TrajectoryStore, model_spec: str, prices: Mapping[str, Sequence[float]]
) -> ItemResult:
    message = str(ItemTimeout(slot.timeout_s))
    elapsed = time.monotonic() - slot.started if slot.started is not None else slot.timeout_s
    return _failed(slot, "timeout", message, elapsed, store, model_spec, prices)


def _failed(
    slot: Slot,
    status: ItemStatus,
    message: str,
    latency_s: float,
    store: TrajectoryStore,
    model_spec: str,
    prices: Mapping[str, Sequence[float]],
    *,
    retry: bool = False,
) -> ItemResult:
    """The result of an item that ended without an answer; tokens spent so far (every turn's) still count."""
    run_ids: list[str] = []
    steps = tool_calls = prompt = completion = 0
    for run_id in slot.recorder.run_ids if slot.recorder is not None else []:
        try:
            run = store.get(run_id)
        except StoreError:  # the run row never landed: it adds nothing
            continue
        run_ids.append(run_id)
        steps += run.model_calls
        prompt += run.prompt_tokens
        completion += run.completion_tokens
        tool_calls += sum(1 for s in run.steps if s.kind == "tool")
    meta = {**_meta(slot.item), **({"run_ids": run_ids} if len(run_ids) > 1 else {})}
    if retry:
        meta[RETRY] = True
    return ItemResult(
        item_id=slot.item.id, status=status, correct=False, metrics={"em": 0.0, "f1": 0.0}, answer=None,
        gold=_golds(slot.item), run_id=run_ids[-1] if run_ids else None, steps=steps, tool_calls=tool_calls,
        prompt_tokens=prompt, completion_tokens=completion, latency_s=latency_s,
        cost_usd=cost_usd(model_spec, prompt, completion, prices), error=message, meta=meta,
    )  # fmt: skip


def _meta(item: Item) -> dict[str, Any]:
    return {**item.meta, "answerable": item.answerable}
