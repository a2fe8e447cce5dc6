"""Reports read real run directories (RunDir.create + append) and write real markdown, JSON and PNG files."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest

from agentdistill.benchmarks.report import ReportError, compare_runs, write_report
from agentdistill.benchmarks.report_stats import mcnemar_exact, wilson_interval
from agentdistill.benchmarks.results import ItemResult, RunDir, RunDirError, RunSpec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(item_id: str, correct: bool, *, status: str = "ok", latency: float = 1.0, cost: float = 0.0, steps: int = 2,
           meta: dict | None = None, answer: str | None = None) -> ItemResult:  # fmt: skip
    return ItemResult(
        item_id=item_id,
        status=status,  # type: ignore[arg-type]
        correct=correct,
        metrics={"em": float(correct), "f1": 1.0 if correct else 0.25},
        answer=answer if answer is not None else ("gold " + item_id if correct else "wrong " + item_id),
        gold=("gold " + item_id, "alias " + item_id),
        run_id=f"run-{item_id}",
        steps=steps,
        prompt_tokens=100,
        completion_tokens=20,
        latency_s=latency,
        cost_usd=cost,
        error="agent crashed: boom" if status == "error" else None,
        meta=meta or {},
    )


def make_run(path: Path, results: Sequence[ItemResult], *, suite: str = "hotpotqa", label: str | None = None,
             item_ids: Sequence[str] | None = None) -> RunDir:  # fmt: skip
    ids = tuple(item_ids) if item_ids is not None else tuple(r.item_id for r in results)
    run = RunDir.create(path, RunSpec(suite=suite, agent="react", model="scripted:x", item_ids=ids, label=label))
    for r in results:
        run.append(r)
    return run


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first in every PNG
    assert width > 200 and height > 200 and len(data) > 2000


def test_wilson_interval_matches_known_values() -> None:
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert wilson_interval(0, 20)[0] == 0.0 and 0.15 < wilson_interval(0, 20)[1] < 0.17  # not a zero-width interval
    assert wilson_interval(0, 0) is None


def test_mcnemar_exact_is_a_two_sided_binomial_on_discordant_items() -> None:
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert 0.0 <= mcnemar_exact(0, 3000) < 1e-300  # big-int arithmetic: no overflow


def test_report_numbers_tables_and_plots(tmp_path: Path) -> None:
    results = [
        result("q1", True, latency=1.0, cost=0.01, steps=1, meta={"type": "bridge", "hops": 2}),
        result("q2", True, latency=2.0, cost=0.01, steps=2, meta={"type": "comparison", "hops": 10}),
        result("q3", False, status="max_steps", latency=3.0, cost=0.01, steps=8, meta={"type": "bridge", "hops": 2}),
        result("q4", False, status="error", latency=10.0, cost=0.01, steps=0, meta={"type": "bridge", "hops": 3}),
    ]
    # written in completion order q4, q3, q2, q1: the report still lists items in the run's own order
    make_run(tmp_path / "run", results[::-1], label="teacher", item_ids=["q1", "q2", "q3", "q4", "q5"])

    path = write_report(tmp_path / "run")

    assert path == tmp_path / "run" / "report" / "report.md"
    data = json.loads((path.parent / "report.json").read_text())
    s = data["summary"]
    assert (data["planned"], data["finished"], s["n"], s["correct"]) == (5, 4, 4, 2)
    assert s["accuracy"] == 0.5 and s["em"] == 0.5 and s["f1"] == pytest.approx((1 + 1 + 0.25 + 0.25) / 4)
    assert s["latency_p50"] == pytest.approx(2.5) and s["cost_usd"] == pytest.approx(0.04)
    assert s["errors"] == 1 and s["max_steps_rate"] == 0.25 and s["tokens_mean"] == 120
    assert s["accuracy_ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    assert data["status_counts"] == {"ok": 2, "max_steps": 1, "error": 1, "timeout": 0}
    assert data["breakdown"]["type"]["bridge"] == {"n": 3, "correct": 1, "accuracy": 1 / 3, "f1": 0.5}
    assert list(data["breakdown"]["hops"]) == ["2", "3", "10"]  # numeric order, not "10" < "2"
    assert "level" not in data["breakdown"]
    assert [r["item_id"] for r in data["slowest"]] == ["q4", "q3", "q2", "q1"]
    assert [(w["item_id"], w["gold"]) for w in data["wrong_sample"]] == [
        ("q3", ["gold q3", "alias q3"]),
        ("q4", ["gold q4", "alias q4"]),
    ]
    assert data["run"]["name"] == "teacher" and data["run"]["spec"]["suite"] == "hotpotqa"
    assert set(data["plots"]) == {"accuracy", "tradeoffs", "steps"}
    for name in data["plots"].values():
        assert_png(path.parent / name)
        assert f"]({name})" in path.read_text()

    md = path.read_text()
    assert md.startswith("# Benchmark report: teacher")
    assert "| accuracy | 50.0% [" in md and "| latency p50 | 2.50 s |" in md and "| cost | $0.0400 |" in md
    assert "## By type" in md and "| bridge | 3 | 33.3% | 0.500 |" in md
    assert "agent crashed: boom" in md and "gold q3 / alias q3" in md
    assert "4 finished of 5 planned" in md


def test_empty_run_gets_a_report_saying_so(tmp_path: Path) -> None:
    make_run(tmp_path / "run", [], item_ids=["a", "b"])

    path = write_report(tmp_path / "run", tmp_path / "out")

    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (data["finished"], data["summary"]["n"], data["plots"]) == (0, 0, {})
    assert data["summary"]["accuracy_ci95"] is None
    assert "No finished items yet" in path.read_text() and "--resume" in path.read_text()
    assert not list((tmp_path / "out").glob("*.png"))


def test_torn_last_line_is_skipped_and_left_in_place(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [result("q1", True), result("q2", False)], item_ids=["q1", "q2", "q3"])
    with open(run.results_path, "ab") as f:
        f.write(b'{"item_id": "q3", "status": "ok", "corr')  # a writer killed mid-line
    before = run.results_path.read_bytes()

    path = write_report(tmp_path / "run")

    data = json.loads((path.parent / "report.json").read_text())
    assert (data["summary"]["n"], data["summary"]["correct"]) == (2, 1)
    assert run.results_path.read_bytes() == before  # a report never repairs: the runner may still be writing


def test_report_on_a_directory_without_a_run_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a benchmark run directory"):
        write_report(tmp_path)


def test_compare_restricts_to_shared_items_and_pairs_them(tmp_path: Path) -> None:
    teacher = [result(f"q{i}", ok, latency=2.0, cost=0.02) for i, ok in enumerate([1, 1, 1, 0, 1, 1])]
    student = [result(f"q{i}", ok, latency=0.5) for i, ok in enumerate([1, 0, 0, 0])]  # q4, q5 not finished yet
    ids = [f"q{i}" for i in range(6)]
    make_run(tmp_path / "teacher", teacher, label="teacher", item_ids=ids)
    make_run(tmp_path / "student", student[::-1], label="student", item_ids=ids)

    path = compare_runs([tmp_path / "teacher", tmp_path / "student"], tmp_path / "cmp")

    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["teacher", "student"]
    assert data["same_suite"] is True and data["shared_items"] == 4 and data["warnings"] == []
    assert [s["n"] for s in data["compared"]] == [4, 4] and [s["n"] for s in data["full"]] == [6, 4]
    assert [s["accuracy"] for s in data["compared"]] == [0.75, 0.25]
    assert data["full"][0]["accuracy"] == pytest.approx(5 / 6)
    assert data["compared"][0]["cost_usd"] == pytest.approx(0.08)  # only the shared items are summed
    paired = data["paired"]
    assert {k: paired[k] for k in ("both_right", "only_a", "only_b", "both_wrong", "n")} == {
        "both_right": 1, "only_a": 2, "only_b": 0, "both_wrong": 1, "n": 4,
    }  # fmt: skip
    assert paired["mcnemar_p"] == pytest.approx(mcnemar_exact(2, 0)) == 0.5
    assert set(data["plots"]) == {"accuracy", "tradeoffs", "paired"}
    for name in data["plots"].values():
        assert_png(tmp_path / "cmp" / name)
    md = path.read_text()
    assert "**4 items finished in all runs**" in md
    assert "| accuracy | 75.0% [" in md and "| n (all finished) | 6 | 4 |" in md
    assert "| only teacher | 2 |" in md and "| McNemar exact p | 0.5 |" in md


def test_compare_across_suites_warns_and_keeps_each_runs_items(tmp_path: Path) -> None:
    make_run(tmp_path / "a", [result("h1", True), result("h2", False)], suite="hotpotqa")
    make_run(tmp_path / "b", [result("g1", True), result("g2", True), result("g3", True)], suite="gsm8k")
    make_run(tmp_path / "c", [result("g1", False)], suite="gsm8k")

    compare_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"], tmp_path / "cmp")

    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["same_suite"] is False and data["shared_items"] is None and data["paired"] is None
    assert [s["n"] for s in data["compared"]] == [2, 3, 1]
    assert len(data["warnings"]) == 1 and "different suites (gsm8k, hotpotqa)" in data["warnings"][0]
    assert "> **Warning:** runs are on different suites" in (tmp_path / "cmp" / "compare.md").read_text()
    # same agent/model and no label: the columns still get distinct names
    assert [r["name"] for r in data["runs"]] == ["react/scripted:x #1", "react/scripted:x #2", "react/scripted:x #3"]


def test_compare_with_no_shared_items_reports_empty_columns(tmp_path: Path) -> None:
    make_run(tmp_path / "a", [result("q1", True)], label="a", item_ids=["q1", "q2"])
    make_run(tmp_path / "b", [], label="b", item_ids=["q1", "q2"])

    path = compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "cmp")

    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["shared_items"] == 0 and data["paired"] is None and "no item is finished" in data["warnings"][0]
    assert "| accuracy | — | — |" in path.read_text()
    assert_png(tmp_path / "cmp" / "accuracy.png")


def test_compare_needs_two_runs(tmp_path: Path) -> None:
    make_run(tmp_path / "a", [result("q1", True)])
    with pytest.raises(ReportError, match="bench report"):
        compare_runs([tmp_path / "a"], tmp_path / "cmp")
