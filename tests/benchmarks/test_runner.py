"""`run_benchmark` and `summarize` with scripted models, a real RunDir and a real SQLite trajectory store."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from agentdistill.agents.factory import build_agent
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.metrics import INSUFFICIENT, math_score, qa_score
from agentdistill.benchmarks.results import RETRY, ItemResult, RunDir, RunSpec
from agentdistill.benchmarks.runner import ItemsMismatch, RunnerConfig, run_benchmark, summarize
from agentdistill.errors import ModelUnavailable
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import Message
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder

MODEL = "scripted:inline"
PRICES = {"scripted:*": [1000.0, 2000.0]}  # USD per 1M tokens: large, so small token counts cost visibly


def question_number(messages: Sequence[Message]) -> int:
    return int(re.search(r"question (\d+)", messages[1]["content"]).group(1))  # type: ignore[union-attr]


def items(n: int, **overrides: Item) -> list[Item]:
    made = [Item(f"q{i}", f"question {i}: what is answer {i}?", (f"answer {i}", f"alias {i}")) for i in range(n)]
    return [overrides.get(item.id, item) for item in made]


def start(tmp: Path, todo: Sequence[Item], name: str = "run") -> RunDir:
    return RunDir.create(tmp / name, RunSpec("toy", "react", MODEL, tuple(i.id for i in todo)))


def bench(
    run_dir: RunDir, todo: Sequence[Item], store: TrajectoryStore, reply: Callable[[Sequence[Message]], str], **cfg
):  # noqa: ANN201 - RunSummary
    model = ScriptedModel([reply], repeat_last=True, spec=MODEL)
    return run_benchmark(
        run_dir, todo, make_graph=lambda rec: build_agent("react", model, kb=None, recorder=rec), store=store,
        metric=qa_score, config=RunnerConfig(progress=False, **cfg), model_spec=MODEL, prices=PRICES,
    )  # fmt: skip


@pytest.fixture
def store(home: Path):  # noqa: ANN201
    with TrajectoryStore.open(home / "trajectories.db") as opened:
        yield opened


def test_every_item_is_scored_in_the_results_and_the_trajectory_store(tmp_path: Path, store: TrajectoryStore) -> None:
    todo = items(4)
    run_dir = start(tmp_path, todo)

    def reply(messages: Sequence[Message]) -> str:
        n = question_number(messages)
        return "Final Answer: wrong" if n == 2 else f"Thought: easy\nFinal Answer: The Alias {n}."

    summary = bench(run_dir, todo, store, reply, concurrency=2)
    results = {r.item_id: r for r in run_dir.results()}
    assert set(results) == {"q0", "q1", "q2", "q3"}
    assert [results[i].correct for i in ("q0", "q1", "q2", "q3")] == [True, True, False, True]
    assert results["q0"].status == "ok" and results["q0"].metrics == {"em": 1.0, "f1": 1.0}
    assert results["q0"].gold == ("answer 0", "alias 0") and results["q0"].steps == 1
    assert results["q0"].prompt_tokens > 0 and results["q0"].cost_usd > 0
    assert (summary.n, summary.correct, summary.accuracy, summary.errors) == (4, 3, 0.75, 0)
    assert summary.cost_usd == pytest.approx(sum(r.cost_usd for r in results.values()))
    for result in results.values():  # the trajectory carries the same score and where it came from
        run = store.get(result.run_id)  # type: ignore[arg-type]
        assert (run.score, run.suite, run.item_id) == (float(result.correct), "toy", result.item_id)
        assert run.meta == {"bench_run": str(run_dir.path), "suite": "toy", "item_id": result.item_id}
        assert run.metrics == dict(result.metrics)


def test_an_agent_that_crashes_is_an_error_item_and_the_run_goes_on(tmp_path: Path, store: TrajectoryStore) -> None:
    todo = items(3)
    run_dir = start(tmp_path, todo)

    def reply(messages: Sequence[Message]) -> str:
        if question_number(messages) == 1:
            raise RuntimeError("backend exploded")
        return f"Final Answer: answer {question_number(messages)}"

    summary = bench(run_dir, todo, store, reply)
    results = {r.item_id: r for r in run_dir.results()}
    assert [results[i].status for i in ("q0", "q1", "q2")] == ["ok", "error", "ok"]
    crashed = results["q1"]
    assert not crashed.correct and crashed.error == "RuntimeError: backend exploded" and crashed.answer is None
    assert crashed.run_id is not None and crashed.steps == 1  # the failed model call is in the trajectory
    run = store.get(crashed.run_id)
    assert (run.status, run.score, run.error.kind) == ("error", 0.0, "RuntimeError")  # type: ignore[union-attr]
    assert (summary.errors, summary.correct, summary.n) == (1, 2, 3)


def test_an_item_over_its_budget_is_a_timeout_and_a_late_finish_adds_no_line(
    tmp_path: Path, store: TrajectoryStore
) -> None:
    todo = items(3)
    run_dir = start(tmp_path, todo)
    released = threading.Event()

    def reply(messages: Sequence[Message]) -> str:
        n = question_number(messages)
        if n == 0:  # one slow call: the main thread stops waiting at the deadline; the worker ends later
            released.wait(5)
            return "Final Answer: answer 0"
        if n == 1:  # slow steps: once the deadline passed, the worker's next model call is refused
            time.sleep(0.3)
            return f'Action: recall\nAction Input: {{"step": {len(messages)}}}'  # unknown tool: a fast observation
        return "Final Answer: answer 2"

    started = time.perf_counter()
    summary = bench(run_dir, todo, store, reply, concurrency=3, item_timeout_s=0.5)
    assert time.perf_counter() - started < 3  # nobody waited for the slow call
    released.set()
    time.sleep(0.3)  # let the abandoned worker finish its late answer
    results = {r.item_id: r for r in run_dir.results()}
    assert [results[i].status for i in ("q0", "q1", "q2")] == ["timeout", "timeout", "ok"]
    assert "item exceeded its 0.5 s budget" in results["q0"].error  # type: ignore[operator]
    assert results["q1"].steps == 2 and results["q1"].tool_calls == 2  # work done before the deadline counts
    lines = [json.loads(line)["item_id"] for line in run_dir.results_path.read_text().splitlines()]
    assert sorted(lines) == ["q0", "q1", "q2"]  # exactly one line each, the late answer included none
    assert summary.timeouts == 2
    late = store.get(results["q0"].run_id)  # type: ignore[arg-type]
    assert (late.status, late.score, late.error.kind) == ("error", 0.0, "timeout")  # type: ignore[union-attr]


def test_unanswerable_items_are_right_only_when_the_agent_abstains(tmp_path: Path, store: TrajectoryStore) -> None:
    todo = items(2, q0=Item("q0", "question 0: who?", ("Paris",), answerable=False),
                 q1=Item("q1", "question 1: who?", ("Paris",), answerable=False))  # fmt: skip
    run_dir = start(tmp_path, todo)
    bench(run_dir, todo, store, lambda m: "Final Answer: Insufficient information." if question_number(m) == 0
          else "Final Answer: Paris")  # fmt: skip
    results = {r.item_id: r for r in run_dir.results()}
    assert results["q0"].correct and not results["q1"].correct
    assert results["q0"].gold == (INSUFFICIENT,) and results["q0"].meta == {"answerable": False}


def test_a_resumed_run_runs_only_the_pending_items(tmp_path: Path, store: TrajectoryStore) -> None:
    todo = items(4)
    run_dir = start(tmp_path, todo)
    for item_id in ("q0", "q2"):
        run_dir.append(ItemResult(item_id, "ok", True, {"em": 1.0, "f1": 1.0}, "x", ("x",), None))
    asked: list[int] = []

    def reply(messages: Sequence[Message]) -> str:
        asked.append(question_number(messages))
        return f"Final Answer: answer {asked[-1]}"

    summary = bench(RunDir.open(run_dir.path, repair=True), todo, store, reply)
    assert asked == [1, 3] and summary.n == 4 and summary.correct == 4
    assert [r.item_id for r in run_dir.results()] == ["q0", "q2", "q1", "q3"]


def test_items_missing_from_the_data_are_refused_before_any_call(tmp_path: Path, store: TrajectoryStore) -> None:
    run_dir = start(tmp_path, items(3))
    with pytest.raises(ItemsMismatch, match="same suite, data file and --limit"):
        bench(run_dir, items(2), store, lambda m: pytest.fail("the model must not be called"))


def test_ctrl_c_keeps_finished_items_stops_submitting_and_reraises(tmp_path: Path, store: TrajectoryStore) -> None:
    todo = items(4)
    run_dir = start(tmp_path, todo)
    asked: list[int] = []

    def reply(messages: Sequence[Message]) -> str:
        asked.append(question_number(messages))
        if asked[-1] == 1:
            raise KeyboardInterrupt  # reaches the main thread through the future, as a real Ctrl-C would
        return f"Final Answer: answer {asked[-1]}"

    with pytest.raises(KeyboardInterrupt):
        bench(run_dir, todo, store, reply)
    assert asked == [0, 1] and [r.item_id for r in run_dir.results()] == ["q0"]
    assert RunDir.open(run_dir.path).pending_ids() == ["q1", "q2", "q3"]


def test_math_metric_and_a_graph_per_item(tmp_path: Path, store: TrajectoryStore) -> None:
    todo = [Item("m1", "question 1: 3/4 of 8?", ("6",)), Item("m2", "question 2: half of 5?", ("2.5",))]
    run_dir = start(tmp_path, todo)
    recorders: list[Recorder] = []
    model = ScriptedModel([lambda m: "Final Answer: $6.00" if question_number(m) == 1 else "Final Answer: 5/2"],
                          repeat_last=True)  # fmt: skip

    def make_graph(recorder: Recorder):  # noqa: ANN202
        recorders.append(recorder)
        return build_agent("react", model, kb=None, recorder=recorder)

    summary = run_benchmark(run_dir, todo, make_graph=make_graph, store=store, metric=math_score,
                            config=RunnerConfig(progress=False), model_spec="x:unpriced", prices=PRICES)  # fmt: skip
    assert summary.correct == 2 and summary.cost_usd == 0.0  # no price for the spec: free, not an error
    assert len({id(r) for r in recorders}) == 2


def test_summarize_figures() -> None:
    def result(item_id: str, status: str, correct: bool, latency: float, **kw: object) -> ItemResult:
        return ItemResult(item_id, status, correct, {"em": float(correct), "f1": 0.5 + correct / 2}, "a", ("a",),  # type: ignore[arg-type]
                          None, latency_s=latency, **kw)  # type: ignore[arg-type]  # fmt: skip

    summary = summarize([
        result("a", "ok", True, 1.0, steps=2, prompt_tokens=100, completion_tokens=10, cost_usd=0.5),
        result("b", "max_steps", False, 2.0, steps=8, prompt_tokens=300, completion_tokens=30, cost_usd=0.25),
        result("c", "error", False, 3.0), result("d", "timeout", False, 10.0),
    ])  # fmt: skip
    assert (summary.n, summary.correct, summary.accuracy, summary.em) == (4, 1, 0.25, 0.25)
    assert summary.f1 == pytest.approx(0.625)
    assert (summary.errors, summary.timeouts, summary.max_steps, summary.max_steps_rate) == (1, 1, 1, 0.25)
    assert (summary.steps_mean, summary.tokens_mean) == (2.5, 110.0)
    assert (summary.prompt_tokens, summary.completion_tokens, summary.cost_usd) == (400, 40, 0.75)
    assert summary.latency_p50 == 2.5 and summary.latency_p95 == pytest.approx(8.95) and summary.latency_mean == 4.0
    assert summary.as_dict()["accuracy"] == 0.25
    empty = summarize([])
    assert empty.n == 0 and empty.accuracy == 0.0 and empty.latency_p95 == 0.0 and json.dumps(empty.as_dict())


def test_unreachable_model_items_rerun_on_resume_and_count_once(
    tmp_path: Path, store: TrajectoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    todo = items(4)
    run_dir = start(tmp_path, todo)

    def first(messages: Sequence[Message]) -> str:
        n = question_number(messages)
        if n == 1:
            raise ModelUnavailable("llama-server died and was restarted; this call failed")
        if n == 2:
            raise ValueError("a bug in the agent")  # not the model's reachability: final
        return f"Final Answer: answer {n}"

    summary = bench(run_dir, todo, store, first)
    assert (summary.n, summary.errors, summary.correct) == (4, 2, 2)
    by_id = {r.item_id: r for r in run_dir.results()}
    assert by_id["q1"].meta.get(RETRY) is True and not by_id["q2"].meta.get(RETRY)
    assert run_dir.pending_ids() == ["q1"]

    resumed = RunDir.open(run_dir.path)
    import agentdistill.benchmarks.runner as runner

    bars, real = [], runner._Progress  # the progress bar starts from the items kept, not the ones to rerun

    def spy(*args: object) -> runner._Progress:
        bars.append(real(*args))
        return bars[-1]

    monkeypatch.setattr(runner, "_Progress", spy)
    summary = bench(resumed, todo, store, lambda m: f"Final Answer: answer {question_number(m)}")
    assert (summary.n, summary.errors, summary.correct) == (4, 1, 3)
    assert [(bar.done, bar.correct) for bar in bars] == [(4, 3)]  # started at 3 done (2 right), then q1
    assert resumed.pending_ids() == [] and len(resumed.results()) == 4
    assert {r.item_id: r.status for r in resumed.results()}["q1"] == "ok"
    assert len(run_dir.results_path.read_text().splitlines()) == 5  # the error line stays, superseded
