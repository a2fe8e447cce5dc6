"""The fallback rate and the cost by answering model, read back from recorded runs in a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentdistill.benchmarks.fallback_rate import fallback_report, result_runs
from agentdistill.benchmarks.results import ItemResult
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.trajectory import Run, Step

TEACHER, STUDENT = "openai:gpt-4o", "hf:./students/decomposer"
PRICES = {"openai:gpt-4o": [2.0, 10.0]}  # USD per 1M tokens; the student is unpriced (local)


def call(run_id: str, index: int, node: str, model: str, reason: str | None = None) -> Step:
    data: dict[str, Any] = {"fallback": {"from": STUDENT, "text": "?", "reason": reason}} if reason else {}
    return Step(run_id=run_id, index=index, kind="model", node=node, model=model, prompt_tokens=1000,
                completion_tokens=100, data=data)  # fmt: skip


def stored(store: TrajectoryStore, run_id: str, steps: list[Step]) -> None:
    store.start_run(Run(id=run_id, agent="lag", question="q", models={"policy": f"{TEACHER}[decompose=...]"}))
    for step in steps:
        store.append_step(step)
    store.finish_run(run_id, status="ok", answer="a")


def result(item_id: str, run_id: str | None, **meta: Any) -> ItemResult:
    return ItemResult(item_id=item_id, status="ok", correct=True, metrics={}, answer="a", gold=("a",), run_id=run_id,
                      meta=meta)  # fmt: skip


def test_fallback_rate_by_reason_and_node_and_cost_by_answering_model(home: Path) -> None:
    with TrajectoryStore.open(home / "t.db") as store:
        stored(store, "r1", [call("r1", 0, "decompose", STUDENT), call("r1", 1, "resolve", TEACHER),
                             call("r1", 2, "synthesize", TEACHER)])  # fmt: skip
        stored(store, "r2", [call("r2", 0, "decompose", TEACHER, "unparsable"), call("r2", 1, "resolve", TEACHER)])
        stored(store, "r3", [call("r3", 0, "decompose", TEACHER, "disagree"),
                             Step(run_id="r3", index=1, kind="tool", node="resolve", tool="search")])  # fmt: skip
        results = [result("a", "r1"), result("b", "gone"), result("c", None, run_ids=["r2", "r3"])]
        runs = result_runs(store, results)  # a run that never landed is skipped
    assert [r.id for r in runs] == ["r1", "r2", "r3"]
    report = fallback_report(runs, teacher=TEACHER, students={STUDENT}, prices=PRICES)
    assert (report.calls, report.student_calls, report.student_answers) == (6, 3, 1)
    assert report.fallbacks == {"unparsable": 1, "disagree": 1} and report.fallback_rate == pytest.approx(2 / 3)
    assert report.teacher_share == pytest.approx(5 / 6)
    assert report.by_node == {"decompose": {"calls": 3, "fallbacks": 2}}
    assert report.tokens_by_model == {STUDENT: 1100, TEACHER: 5 * 1100}
    per_call = (1000 * 2.0 + 100 * 10.0) / 1e6
    assert report.cost_usd == pytest.approx(5 * per_call) and report.teacher_cost_usd == pytest.approx(6 * per_call)
    assert report.as_dict()["saved_usd"] == pytest.approx(per_call)


def test_no_student_calls_is_a_zero_rate_not_an_error() -> None:
    report = fallback_report([], teacher=TEACHER, students={STUDENT})
    assert (report.fallback_rate, report.teacher_share, report.saved_usd) == (0.0, 0.0, 0.0)
