"""`agentdistill demo` as README.md gives it, with a scripted model: the shipped sample KB is built with the real
embedder, the agent searches it, answers are scored against the shipped gold and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.memory.trajectories import TrajectoryStore

pytestmark = pytest.mark.integration

SEARCH = 'Thought: I should look it up.\nAction: search\nAction Input: {"query": "Battle of Guam"}'


def test_demo_answers_scores_and_records_the_sample_questions(home: Path) -> None:
    replies = home / "replies.json"  # question 1 searched and right, question 2 answered wrong without a search
    replies.write_text(
        json.dumps([SEARCH, "Thought: done\nFinal Answer: Battle of Guam", "Final Answer: Lisa Raymond"])
    )
    result = CliRunner().invoke(cli, ["demo", "--limit", "2", "--model", f"scripted:{replies}", "--json"],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    first, second = report["items"]
    assert (first["gold"], first["em"], first["calls"], first["status"]) == ("Battle of Guam", 1.0, 2, "ok")
    assert (second["gold"], second["em"], second["answer"]) == ("Liezel Huber", 0.0, "Lisa Raymond")
    assert report["summary"]["em"] == 0.5 and report["summary"]["questions"] == 2
    assert (home / "kb" / "sample").is_dir() and (home / "demo" / "last.json").is_file()
    store = TrajectoryStore.open(Path(report["summary"]["trajectories"]))
    run = store.get(first["run_id"])
    assert run.score == 1.0 and any("Battle of Guam" in (s.observation or "") for s in run.steps if s.tool)
