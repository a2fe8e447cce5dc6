"""`bench report` and `bench compare` through click's runner, on real run directories."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agentdistill.benchmarks.results import ItemResult, RunDir, RunDirError, RunSpec
from agentdistill.commands.bench_report import compare, default_compare_dir, report


def make_run(path: Path, label: str, outcomes: list[bool], *, latency: float) -> Path:
    ids = tuple(f"q{i}" for i in range(len(outcomes)))
    run = RunDir.create(path, RunSpec(suite="gsm8k", agent="react", model="scripted:x", item_ids=ids, label=label))
    for item_id, ok in zip(ids, outcomes, strict=True):
        run.append(
            ItemResult(
                item_id=item_id,
                status="ok",
                correct=ok,
                metrics={"em": float(ok), "f1": float(ok)},
                answer="42" if ok else "41",
                gold=("42",),
                run_id=None,
                prompt_tokens=50,
                completion_tokens=10,
                latency_s=latency,
                cost_usd=0.001,
            )  # fmt: skip
        )
    return path


def test_report_prints_the_summary_and_the_path(tmp_path: Path) -> None:
    run = make_run(tmp_path / "teacher", "teacher", [True, True, False, True], latency=1.5)

    res = CliRunner().invoke(report, [str(run)], catch_exceptions=False)

    assert res.exit_code == 0, res.output
    assert "teacher on gsm8k: 4/4 items" in res.output
    assert "75.0% [" in res.output and "1.50 s" in res.output and "$0.0040" in res.output
    assert f"report: {run / 'report' / 'report.md'}" in res.output
    assert (run / "report" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_report_json_is_the_report_file(tmp_path: Path) -> None:
    run = make_run(tmp_path / "teacher", "teacher", [True, False], latency=1.0)

    res = CliRunner().invoke(report, [str(run), "--out", str(tmp_path / "out"), "--json"], catch_exceptions=False)

    assert res.exit_code == 0, res.output
    printed = json.loads(res.output)
    assert printed == json.loads((tmp_path / "out" / "report.json").read_text())
    assert printed["summary"]["accuracy"] == 0.5


def test_report_on_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    res = CliRunner().invoke(report, [str(tmp_path)])
    assert isinstance(res.exception, RunDirError)  # the main CLI prints it on one line and exits 2


def test_compare_prints_side_by_side_and_paired_counts(tmp_path: Path) -> None:
    teacher = make_run(tmp_path / "teacher", "teacher", [True, True, True, False], latency=2.0)
    student = make_run(tmp_path / "student", "student", [True, False, False, False], latency=0.25)

    res = CliRunner().invoke(compare, [str(teacher), str(student)], catch_exceptions=False)

    assert res.exit_code == 0, res.output
    assert "comparison on 4 shared items" in res.output
    assert "teacher" in res.output and "student" in res.output and "0.25 s" in res.output
    assert "both right 1, only teacher 2, only student 0, both wrong 1" in res.output
    out = default_compare_dir((teacher, student))
    assert out == tmp_path / "compare-teacher-vs-student"
    assert f"report: {out / 'compare.md'}" in res.output and (out / "paired.png").exists()


def test_compare_json_and_single_run_usage_error(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", "a", [True], latency=1.0)
    b = make_run(tmp_path / "b", "b", [False], latency=1.0)

    res = CliRunner().invoke(compare, [str(a), str(b), "--out", str(tmp_path / "c"), "--json"], catch_exceptions=False)
    assert res.exit_code == 0 and json.loads(res.output)["paired"]["only_a"] == 1

    res = CliRunner().invoke(compare, [str(a)])
    assert res.exit_code == 2 and "at least two RUN_DIRs" in res.output
