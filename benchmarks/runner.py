"""The benchmark runner: items -> agent graph -> score -> one results line each, resumable and concurrent.

Every item gets its own Recorder and graph (graphs are cheap to build), so items share nothing but the
model, the KB and the trajectory store, all thread-safe. Workers only compute; the main thread alone
scores into the store and appends to results.jsonl, so a line is written exactly once per item even when
a timed-out worker finishes late. `--resume` simply runs `run_dir.pending_ids()` again.

A suite whose items are conversations (the simulated recommendation sessions) passes an `episode` function
instead of a metric: it drives the graph over as many turns as it likes, scores the item itself and returns an
`Outcome`; the runner treats it like a turn otherwise (deadline, errors, resume), and every run the item
recorded gets the item's score, so distill can select any turn of a good session.

`summarize` is the one aggregation of a run's results; `bench run` prints it and the reports reuse it, so
a figure means the same everywhere.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from agentdistill.agents.turn import run_turn
from agentdistill.benchmarks.cost import cost_usd
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.metrics import INSUFFICIENT, Score
from agentdistill.benchmarks.results import RETRY, ItemResult, ItemStatus, RunDir
from agentdistill.errors import AgentDistillError, ConfigError, ModelUnavailable, StoreError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback
from agentdistill.progress import Progress
from agentdistill.trajectory import Recorder, RunStatus, StepError

Metric = Callable[[str | None, Sequence[str]], Score]
MakeGraph = Callable[[Recorder], Any]  # a compiled agent graph built around the given recorder
POLL_S = 0.5  # longest the main thread sleeps before looking at deadlines again (also how soon Ctrl-C is seen)
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


class ItemsMismatch(AgentDistillError):
    """The items handed to the runner are not the ones the run directory's spec lists."""


@dataclass(frozen=True, kw_only=True)
class RunnerConfig:
    """How items are run (what is run lives in the RunDir's RunSpec)."""

    concurrency: int = 1  # items in flight at once; each holds one model call at a time
    item_timeout_s: float = 600.0  # wall budget per item; checked before each model call and by the main thread
    progress: bool | None = None  # stderr: True = a bar, False = nothing, None = a bar on a terminal, else timed lines
    seed: int = 0  # the run's seed, as recorded in its RunSpec (item sampling happens before the runner)
    run_meta: Mapping[str, Any] = field(default_factory=dict)  # added to every run's meta (e.g. prompt_hash)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency", self.concurrency, "1 or more items in flight")
        if not self.item_timeout_s > 0:
            raise ConfigError("item_timeout_s", self.item_timeout_s, "a positive number of seconds")


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


class _Slot:
    """One item in flight: the main thread reads its deadline, the worker's model wrapper enforces it."""

    def __init__(self, item: Item, timeout_s: float, abort: threading.Event) -> None:
        self.item = item
        self.timeout_s = timeout_s
        self.abort = abort
        self.started: float | None = None  # monotonic; set by the worker when it picks the item up
        self.recorder: _ItemRecorder | None = None
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

    def __init__(self, inner: ChatModel, slot: _Slot) -> None:
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


class _ItemRecorder(Recorder):
    """The per-item Recorder: puts the deadline in front of every model the graph wraps, remembers the run id.

    Every graph wraps its models through `recorder.wrap` exactly once, so this is the one place where the
    deadline reaches all of them without `make_graph` knowing about it. The check sits outside the recording
    wrapper: a refused call never happened, so it is not recorded as a model step.
    """

    def __init__(self, store: TrajectoryStore, *, agent: str, meta: Mapping[str, Any], slot: _Slot) -> None:
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


def run_benchmark(
    run_dir: RunDir,
    items: Sequence[Item],
    *,
    make_graph: MakeGraph,
    store: TrajectoryStore,
    metric: Metric | None = None,
    episode: Episode | None = None,
    config: RunnerConfig,
    model_spec: str,
    prices: Mapping[str, Sequence[float]],
) -> RunSummary:
    """Run every pending item of `run_dir` (in spec order), append one result line each, return the summary.

    Each item is one `run_turn` scored by `metric`, or whatever `episode` does with it (exactly one of the
    two). An agent that raises is recorded as an "error" item and the run goes on; an item over its time
    budget is recorded as "timeout". Ctrl-C stops submitting, keeps what finished, and re-raises: `--resume`
    then picks up exactly the items without a line.
    """
    if (metric is None) == (episode is None):
        raise ValueError("run_benchmark needs exactly one of metric (one question per item) or episode")
    with run_dir.lock():
        by_id = {item.id: item for item in items}
        pending = run_dir.pending_ids()
        missing = [item_id for item_id in pending if item_id not in by_id]
        if missing:
            raise ItemsMismatch(
                f"{run_dir.path}: {len(missing)} item(s) of the run spec are not in the data given, e.g."
                f" {missing[0]!r}: resume with the same suite, data file and --limit the run was started with."
            )
        spec = run_dir.spec
        rerun = set(pending)  # --resume also reruns items whose last line was an unreachable model
        earlier = [result for result in run_dir.results() if result.item_id not in rerun]
        abort = threading.Event()
        # Item ids with a line written by this process: the guard against a second line for one item. Only the main
        # thread writes, so no lock is needed; a given-up worker's future is no longer watched, so its late result
        # never even reaches `finish`.
        finished: set[str] = set()
        progress = _Progress(len(spec.item_ids), earlier, config.progress)

        def work(slot: _Slot) -> ItemResult | None:
            slot.started = time.monotonic()
            meta = {**config.run_meta, "bench_run": str(run_dir.path), "suite": spec.suite, "item_id": slot.item.id}
            slot.recorder = _ItemRecorder(store, agent=spec.agent, meta=meta, slot=slot)
            return _run_item(slot, make_graph(slot.recorder), store, metric, episode, model_spec, prices)

        def finish(result: ItemResult) -> None:
            if result.item_id in finished:
                return
            finished.add(result.item_id)
            # The line first: a scored run always has its line, so a kill in between never makes --resume redo an item
            # (and leave two scored runs of it for a dataset to count twice); a line whose runs miss their score is
            # scored again on resume, below.
            run_dir.append(result)
            _score(store, spec.suite, result)
            progress.add(result)

        for result in earlier:  # killed after a line was written and before its runs were scored
            if store.unscored(_run_ids(result)):
                _score(store, spec.suite, result)

        # Threads beyond `concurrency` let new items start while a timed-out worker finishes its last model call.
        executor = ThreadPoolExecutor(max_workers=2 * config.concurrency, thread_name_prefix="bench")
        live: dict[Future[ItemResult | None], _Slot] = {}
        queue = list(reversed(pending))
        try:
            while queue or live:
                while queue and len(live) < config.concurrency:
                    slot = _Slot(by_id[queue.pop()], config.item_timeout_s, abort)
                    live[executor.submit(work, slot)] = slot
                done, _ = wait(list(live), timeout=_next_wake(live.values()), return_when=FIRST_COMPLETED)
                for future in done:
                    live.pop(future)
                    result = future.result()  # agent failures are results; a make_graph bug ends the run here
                    if result is not None:
                        finish(result)
                now = time.monotonic()
                for future, slot in list(live.items()):
                    if slot.give_up_at is not None and now >= slot.give_up_at:
                        slot.abandoned = True
                        live.pop(future)  # the thread runs on until its next model call refuses; its result is dropped
                        finish(_timeout_result(slot, store, model_spec, prices))
        except KeyboardInterrupt:
            abort.set()
            for future in [f for f in live if f.done() and not f.cancelled() and f.exception() is None]:
                result = future.result()
                if result is not None:
                    finish(result)
            raise
        finally:
            abort.set()  # workers still running (timed out, or interrupted) stop before their next model call
            executor.shutdown(wait=False, cancel_futures=True)
            progress.close()
        return summarize(run_dir.results())


def _run_ids(result: ItemResult) -> list[str]:
    return list(result.meta.get("run_ids") or ([result.run_id] if result.run_id is not None else []))


def _score(store: TrajectoryStore, suite: str, result: ItemResult) -> None:
    """Attach the item's outcome to every run it made (an episode's runs also get their own turn figures)."""
    per_run = result.meta.get("run_metrics") or {}
    for run_id in _run_ids(result):
        metrics = {**result.metrics, **per_run.get(run_id, {})}
        store.set_score(run_id, 1.0 if result.correct else 0.0, metrics, suite=suite, item_id=result.item_id)


def _next_wake(slots: Any) -> float:
    deadlines = [s.give_up_at for s in slots if s.give_up_at is not None]
    soonest = min(deadlines, default=math.inf) - time.monotonic()
    return max(0.0, min(POLL_S, soonest))


def _golds(item: Item) -> tuple[str, ...]:
    """What the metric compares against: an unanswerable item is right only when the agent abstains."""
    return item.answers if item.answerable else (INSUFFICIENT,)


def _run_item(
    slot: _Slot,
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


def _timeout_result(
    slot: _Slot, store: TrajectoryStore, model_spec: str, prices: Mapping[str, Sequence[float]]
) -> ItemResult:
    message = str(ItemTimeout(slot.timeout_s))
    elapsed = time.monotonic() - slot.started if slot.started is not None else slot.timeout_s
    return _failed(slot, "timeout", message, elapsed, store, model_spec, prices)


def _failed(
    slot: _Slot,
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


class _Progress:
    """items done/total with accuracy so far and this session's tokens/s, on stderr."""

    def __init__(self, total: int, earlier: Sequence[ItemResult], enabled: bool | None) -> None:
        self.correct = sum(bool(r.correct) for r in earlier)
        self.done = len(earlier)
        self.tokens = 0
        self.started = time.perf_counter()
        self.bar = Progress(total, desc="items", unit="item", initial=self.done, enabled=enabled)

    def add(self, result: ItemResult) -> None:
        self.done += 1
        self.correct += bool(result.correct)
        self.tokens += result.tokens
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix(acc=f"{self.correct / self.done:.3f}", tok_s=f"{self.tokens / elapsed:.0f}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@dataclass(frozen=True)
class RunSummary:
    """Aggregates over one run's item results (means are over all items, errors included, unless noted)."""

    n: int  # items with a result
    correct: int  # items scored right
    accuracy: float  # correct / n
    em: float  # mean exact match
    f1: float  # mean token F1
    errors: int  # items whose agent raised
    timeouts: int  # items stopped by the per-item timeout
    max_steps: int  # items that ran out of steps
    max_steps_rate: float  # max_steps / n
    steps_mean: float  # model calls per item
    tokens_mean: float  # prompt + completion tokens per item
    prompt_tokens: int  # total over the run
    completion_tokens: int  # total over the run
    latency_p50: float  # seconds per item
    latency_p95: float  # seconds per item
    latency_mean: float  # seconds per item
    cost_usd: float  # total over the run (0.0 when no price is known for the model)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(results: Sequence[ItemResult]) -> RunSummary:
    """One run's figures; an empty run gives zeros rather than NaN so tables and JSON stay printable."""
    n = len(results)
    latencies = sorted(r.latency_s for r in results)
    max_steps = sum(r.status == "max_steps" for r in results)
    correct = sum(bool(r.correct) for r in results)
    return RunSummary(
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        em=_mean([float(r.metrics.get("em", 0.0)) for r in results]),
        f1=_mean([float(r.metrics.get("f1", 0.0)) for r in results]),
        errors=sum(r.status == "error" for r in results),
        timeouts=sum(r.status == "timeout" for r in results),
        max_steps=max_steps,
        max_steps_rate=max_steps / n if n else 0.0,
        steps_mean=_mean([r.steps for r in results]),
        tokens_mean=_mean([r.tokens for r in results]),
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        latency_p50=_percentile(latencies, 0.50),
        latency_p95=_percentile(latencies, 0.95),
        latency_mean=_mean(latencies),
        cost_usd=sum((r.cost_usd for r in results), 0.0),
    )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), without pulling numpy in."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
