"""`bench run` / `bench report` / `bench list` on the recommendation suites, through CliRunner with a scripted model."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from agentdistill.benchmarks.results import RunDir
from agentdistill.commands.bench_report import report
from agentdistill.commands.bench_run import list_suites, run
from agentdistill.config import Settings
from agentdistill.memory.trajectories import TrajectoryStore

# One reply every recbot role can use: the parser ignores the unknown "steps" (with a notice) and keeps the
# preference, the planner reads a valid plan, the responder says something.
UNIVERSAL = json.dumps({"steps": [{"tool": "filter"}, {"tool": "rank"}, {"tool": "explain"}]})


def invoke(home: Path, command, args: list[str]) -> Result:  # noqa: ANN001 - click command
    return CliRunner().invoke(command, args, obj=Settings(home=home))  # type: ignore[arg-type]


def scripted(home: Path, n: int = 200) -> str:
    path = home / "recbot.json"
    path.write_text(json.dumps([UNIVERSAL] * n), encoding="utf-8")
    return f"scripted:{path}"


def test_rec_netflix_runs_sessions_resumes_and_reports(home: Path) -> None:
    run_dir = home / "rec"
    args = ["--suite", "rec-netflix", "--model", scripted(home), "--embedder", "hashing:64", "--limit", "3",
            "--option", "max_turns=2", "--run-dir", str(run_dir), "--json"]  # fmt: skip
    first = invoke(home, run, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)["summary"]
    assert summary["n"] == 3 and summary["errors"] == 0
    assert {"hit_at_k", "turns_to_hit", "violation_rate", "parse_accuracy", "hit_by_turn"} <= set(summary)
    spec = RunDir.open(run_dir).spec
    assert spec.agent == "recbot" and spec.options == {"max_turns": 2} and spec.embedder == "hashing:64"
    assert all(i.startswith("rec-") for i in spec.item_ids)

    lines = (run_dir / "results.jsonl").read_text().splitlines()
    (run_dir / "results.jsonl").write_text(lines[0] + "\n")  # as if killed after the first session
    again = invoke(home, run, ["--run-dir", str(run_dir), "--resume", "--suite", "rec-netflix"])
    assert again.exit_code == 0, again.output
    assert "(2 of 3 items to run)" in again.stderr and "hit@k" in again.stdout and "parse accuracy" in again.stdout
    results = RunDir.open(run_dir).results()
    assert sorted(r.item_id for r in results) == sorted(spec.item_ids)
    turns = 0
    for r in results:
        assert r.status == "ok" and 1 <= r.metrics["turns"] <= 2 and {"hit_by_t1", "hit_by_t2"} <= set(r.metrics)
        turns += int(r.metrics["turns"])
    with TrajectoryStore.open(home / "trajectories.db") as store:
        scored = [run for run in store.runs(suite="rec-netflix") if run.score is not None]
        assert len(scored) >= turns and {run.agent for run in scored} == {"recbot"}  # every turn's run is scored
        # each turn's run also carries its own parse accuracy, which parser distillation selects on
        assert all(0.0 <= run.metrics["turn_parse_accuracy"] <= 1.0 for run in scored)

    made = invoke(home, report, [str(run_dir)])
    assert made.exit_code == 0, made.output
    assert "hit@k" in made.stdout and "violation rate" in made.stdout
    text = (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Hit@k by turn" in text and "## Sessions" in text and "## Transcripts" in text
    assert "user (open):" in text


def test_rec_suites_need_recbot_and_are_listed(home: Path) -> None:
    wrong = invoke(home, run, ["--suite", "rec-netflix", "--agent", "react", "--model", scripted(home)])
    assert wrong.exit_code != 0 and "--agent recbot" in wrong.output
    bad_user = invoke(home, run, ["--suite", "rec-netflix", "--model", scripted(home), "--option", "user=robot"])
    assert bad_user.exit_code != 0 and "rule or llm" in str(bad_user.exception or bad_user.output)
    assert not (home / "bench").exists()  # refused before any run directory was made
    listed = json.loads(invoke(home, list_suites, ["--json"]).stdout)
    rows = {row["name"]: row for row in listed}
    assert rows["rec-netflix"]["available"] and rows["rec-netflix"]["agent"] == "recbot"
    assert rows["rec-requests"]["path"].endswith("recommendation/interecagent_requests_shared.jsonl")


def test_rec_requests_report_shows_the_responses(home: Path, shared_data: Path) -> None:
    run_dir = home / "req"
    args = ["--suite", "rec-requests", "--data-dir", str(shared_data), "--model", scripted(home), "--embedder",
            "hashing:64", "--limit", "4", "--run-dir", str(run_dir), "--json"]  # fmt: skip
    done = invoke(home, run, args)
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)["summary"]
    assert summary["n"] == 4 and summary["hit_at_k"] is None and summary["answered"] == 1.0
    for r in RunDir.open(run_dir).results():
        assert r.meta["request"] and len(r.meta["recommended_titles"]) == r.metrics["recommended"] > 0
    invoke(home, report, [str(run_dir)])
    text = (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Responses (4 requests)" in text and "  - recommended: " in text
