"""The benchmark runner: items -> agent graph -> score -> one results line each, resumable and concurrent.

Every item gets its own Recorder and graph (graphs are cheap to build), so items share nothing but the
model, the KB and the trajectory store, all thread-safe. Workers only compute; the main thread alone
scores into the store and appends to results.jsonl, so a line is written exactly once per item even when
a timed-out worker finishes late. `--resume` simply runs `run_dir.pending_ids()` again.

A suite whose items are conversations passes an `episode` function instead of a metric (see item_worker.py,
which runs and scores one item in a worker thread).

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

from agentdistill.benchmarks.item_worker import Episode, ItemRecorder, Metric, Slot, run_item, timeout_result
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.results import ItemResult, RunDir
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.progress import Progress
from agentdistill.trajectory import Recorder

MakeGraph = Callable[[Recorder], Any]  # a compiled agent graph built around the given recorder
POLL_S = 0.5  # longest the main thread sleeps before looking at deadlines again (also how soon Ctrl-C is seen)


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

        def work(slot: Slot) -> ItemResult | None:
            slot.started = time.monotonic()
            meta = {**config.run_meta, "bench_run": str(run_dir.path), "suite": spec.suite, "item_id": slot.item.id}
            slot.recorder = ItemRecorder(store, agent=spec.agent, meta=meta, slot=slot)
            return run_item(slot, make_graph(slot.recorder), store, metric, episode, model_spec, prices)

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
        live: dict[Future[ItemResult | None], Slot] = {}
        queue = list(reversed(pending))
        try:
            while queue or live:
                while queue and len(live) < config.concurrency:
                    slot = Slot(by_id[queue.pop()], config.item_timeout_s, abort)
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
                        finish(timeout_result(slot, store, model_spec, prices))
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
