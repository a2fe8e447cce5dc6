"""`bench run` / `bench list` through CliRunner and a real subprocess: scripted and HTTP models, real run dirs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentdistill.benchmarks.results import RunDir
from agentdistill.benchmarks.suites.kb_cache import SuiteKbMissing
from agentdistill.commands.bench_run import ResumeMismatch, list_suites, run
from agentdistill.config import Settings
from agentdistill.errors import InputDataError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.testing.openai_server import FakeOpenAIServer


def data_file(home: Path, n: int, name: str = "toy.jsonl") -> Path:
    path = home / name
    rows = [
        {"id": f"q{i}", "question": f"question {i}: what is answer {i}?", "answer": f"answer {i}"} for i in range(n)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def script(home: Path, replies: list[str], name: str = "script.json") -> str:
    path = home / name
    path.write_text(json.dumps(replies), encoding="utf-8")
    return f"scripted:{path}"


def invoke(home: Path, command, args: list[str], **settings: object) -> Result:  # noqa: ANN001 - click command
    return CliRunner().invoke(command, args, obj=Settings(home=home, **settings))  # type: ignore[arg-type]


def test_run_scores_every_item_and_prints_the_summary(home: Path) -> None:
    data = data_file(home, 3)
    model = script(home, ["Final Answer: answer 0", "Final Answer: nope", "Thought: ok\nFinal Answer: Answer 2."])
    result = invoke(home, run, ["--data", str(data), "--model", model, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["summary"]["n"] == 3 and out["summary"]["correct"] == 2 and out["summary"]["errors"] == 0
    run_dir = Path(out["run_dir"])
    assert run_dir.parent == home / "bench" and re.fullmatch(r"toy-react-\d{8}-\d{6}", run_dir.name)
    opened = RunDir.open(run_dir)
    assert opened.spec.item_ids == ("q0", "q1", "q2") and opened.spec.model == model and opened.spec.suite == "toy"
    assert [r.correct for r in opened.results()] == [True, False, True]
    with TrajectoryStore.open(home / "trajectories.db") as store:
        assert sorted((r.item_id, r.score) for r in store.runs(suite="toy")) == [("q0", 1.0), ("q1", 0.0), ("q2", 1.0)]

    table = invoke(home, run, ["--suite", "mine", "--data", str(data), "--model", model, "--limit", "1",
                               "--run-dir", str(home / "r2"), "--label", "teacher"])  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "teacher on mine" in table.stdout and "accuracy" in table.stdout and "1.000 (1/1)" in table.stdout
    assert f"run dir: {home / 'r2'} (1 of 1 items to run)" in table.stderr


def test_seed_shuffles_before_limit(home: Path) -> None:
    data = data_file(home, 20)
    args = ["--data", str(data), "--model", script(home, ["Final Answer: x"] * 5), "--limit", "5", "--seed", "7"]
    result = invoke(home, run, [*args, "--run-dir", str(home / "r"), "--json"])
    assert result.exit_code == 0, result.output
    ids = RunDir.open(home / "r").spec.item_ids
    assert len(ids) == 5 and ids != ("q0", "q1", "q2", "q3", "q4") and RunDir.open(home / "r").spec.seed == 7


def test_a_malformed_data_line_fails_with_file_and_line_before_any_model_call(home: Path) -> None:
    data = data_file(home, 4)
    lines = data.read_text().splitlines()
    lines[2] = '{"id": "q2", "question": "no answer here"}'
    data.write_text("\n".join(lines) + "\n")
    result = invoke(home, run, ["--data", str(data), "--model", script(home, [])])  # any call would raise
    assert isinstance(result.exception, InputDataError)
    assert f"{data}:3" in str(result.exception)
    assert not (home / "bench").exists()  # no run directory was started
    with TrajectoryStore.open(home / "trajectories.db") as store:
        assert store.count() == 0


def test_a_missing_kb_names_the_build_command(home: Path) -> None:
    result = invoke(home, run, ["--data", str(data_file(home, 2)), "--kb", "wiki", "--model", script(home, [])])
    assert isinstance(result.exception, SuiteKbMissing)
    assert "agentdistill kb build wiki" in str(result.exception)
    assert not (home / "bench").exists()


def test_resume_refuses_a_different_spec_and_continues_an_equal_one(home: Path) -> None:
    data = data_file(home, 3)
    model = script(home, ["Final Answer: answer 0", "Final Answer: answer 1"])
    first = invoke(home, run, ["--data", str(data), "--model", model, "--limit", "2", "--run-dir", str(home / "r")])
    assert first.exit_code == 0, first.output

    other = invoke(home, run, ["--data", str(data), "--model", script(home, [], "b.json"), "--resume", "--run-dir",
                               str(home / "r")])  # fmt: skip
    assert isinstance(other.exception, ResumeMismatch)
    assert "started with model = " in str(other.exception) and "b.json" in str(other.exception)

    longer = invoke(home, run, ["--data", str(data), "--limit", "3", "--resume", "--run-dir", str(home / "r")])
    assert isinstance(longer.exception, ResumeMismatch) and "item_ids" in str(longer.exception)

    agent = invoke(home, run, ["--data", str(data), "--agent", "codeact", "--resume", "--run-dir", str(home / "r")])
    assert isinstance(agent.exception, ResumeMismatch) and "agent = 'react'" in str(agent.exception)

    same = invoke(home, run, ["--data", str(data), "--resume", "--run-dir", str(home / "r"), "--json"])
    assert same.exit_code == 0, same.output  # omitted flags mean "as started"; nothing is left to run
    assert json.loads(same.stdout)["summary"]["n"] == 2 and "(0 of 2 items to run)" in same.stderr

    missing = invoke(home, run, ["--data", str(data), "--resume"])
    assert missing.exit_code == 2 and "--resume continues an existing run: pass its --run-dir" in missing.output


def test_list_shows_suites_and_whether_their_data_is_here(home: Path, tmp_path: Path) -> None:
    (tmp_path / "math").mkdir()
    (tmp_path / "math" / "svamp_shared.jsonl").write_text("")
    result = invoke(home, list_suites, ["--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["sample"]["available"] and rows["sample"]["kb"] == "named: sample"
    assert rows["svamp"]["available"] and rows["svamp"]["path"] == str(tmp_path / "math" / "svamp_shared.jsonl")
    assert not rows["hotpotqa"]["available"] and rows["hotpotqa"]["kb"] == "contexts"
    assert (rows["gsm8k"]["agent"], rows["gsm8k"]["metric"]) == ("codeact", "math")

    plain = invoke(home, list_suites, [])
    assert plain.exit_code == 0 and "<data dir>/hotpotqa/dev_shared.jsonl" in plain.stdout
    assert "--data-dir" in plain.stderr


def answer_by_number(messages: list[dict]) -> str:
    number = re.search(r"question (\d+)", messages[-1]["content"]).group(1)  # type: ignore[union-attr]
    return f"Final Answer: answer {number}"


def _env_for(home: Path, server: FakeOpenAIServer) -> dict[str, str]:
    """A subprocess's environment: this test's home and the fake OpenAI-compatible server."""
    return {**os.environ, "AGENTDISTILL_HOME": str(home), "AGENTDISTILL_OPENAI_BASE_URL": server.base_url,
            "AGENTDISTILL_OPENAI_API_KEY": "EMPTY"}  # fmt: skip


def _wait_for_lines(proc: subprocess.Popen, run_dir: Path, lines: int) -> None:
    """Until the running `bench run` has written `lines` result lines (it must not exit first; 60 s at most)."""
    results = run_dir / "results.jsonl"
    deadline = time.monotonic() + 60
    while not (results.exists() and results.read_text().count("\n") >= lines):
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no results after 60 s"
        time.sleep(0.02)


def test_kill_9_mid_run_then_resume_counts_every_item_exactly_once(home: Path) -> None:
    data = data_file(home, 40)
    run_dir = home / "killed"
    args = ["--data", str(data), "--model", "openai:fake-model", "--concurrency", "2", "--run-dir", str(run_dir)]
    with FakeOpenAIServer(answer_by_number, latency_s=0.15) as server:
        env = _env_for(home, server)
        code = "from agentdistill.commands.bench_run import run; run()"
        proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            _wait_for_lines(proc, run_dir, 6)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
            proc.stderr.close()  # type: ignore[union-attr]
        assert proc.returncode == -signal.SIGKILL
        killed = RunDir.open(run_dir)
        assert 6 <= len(killed.done_ids()) < 40 and killed.pending_ids()  # the kill landed mid-run

        settings = {"openai_base_url": server.base_url, "openai_api_key": "EMPTY"}
        resumed = invoke(home, run, ["--data", str(data), "--resume", "--run-dir", str(run_dir), "--json",
                                     "--concurrency", "4"], **settings)  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    final = RunDir.open(run_dir)
    ids = [r.item_id for r in final.results()]
    assert len(ids) == len(set(ids)) == 40 and set(ids) == set(final.spec.item_ids)
    raw = [json.loads(line)["item_id"] for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(raw) == sorted(ids)  # not even a duplicate line: resume ran only what had no line
    assert all(r.correct for r in final.results()) and json.loads(resumed.stdout)["summary"]["accuracy"] == 1.0
    with TrajectoryStore.open(home / "trajectories.db") as store:
        scored = {r.item_id for r in store.runs(suite="toy", with_steps=False) if r.score is not None}
    assert scored == set(ids)


@pytest.mark.parametrize("bad", ["answer", "=x", "a="])
def test_field_mapping_must_be_ours_equals_theirs(home: Path, bad: str) -> None:
    result = invoke(home, run, ["--data", str(data_file(home, 1)), "--field", bad, "--model", script(home, [])])
    assert result.exit_code == 2 and "OURS=THEIRS" in result.output


def test_sigterm_mid_run_finishes_the_runs_and_a_second_resume_at_once_is_refused(home: Path) -> None:
    data = data_file(home, 400)
    run_dir = home / "stopped"
    args = ["bench", "run", "--data", str(data), "--model", "openai:fake-model", "--concurrency", "2",
            "--run-dir", str(run_dir)]  # fmt: skip
    with FakeOpenAIServer(answer_by_number, latency_s=0.15) as server:
        env = _env_for(home, server)
        code = "from agentdistill.cli import main; main()"
        proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            _wait_for_lines(proc, run_dir, 4)
            second = subprocess.run([sys.executable, "-c", code, *args, "--resume"], env=env, capture_output=True,
                                    text=True, timeout=60)  # fmt: skip
            assert second.returncode == 2 and f"{run_dir} is being run by pid {proc.pid}" in second.stderr
            proc.send_signal(signal.SIGTERM)
        finally:
            proc.wait(timeout=20)
            proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == 143
    with TrajectoryStore.open(home / "trajectories.db") as store:
        statuses = {r.status for r in store.runs(suite="toy", with_steps=False)}
    assert "running" not in statuses and len(RunDir.open(run_dir).pending_ids()) > 0


def test_resume_refuses_a_data_file_edited_under_the_same_ids(home: Path) -> None:
    data = data_file(home, 3)
    model = script(home, ["Final Answer: answer 0"])
    first = invoke(home, run, ["--data", str(data), "--model", model, "--limit", "1", "--run-dir", str(home / "r")])
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[0]["answer"] = "something else"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    again = invoke(home, run, ["--data", str(data), "--resume", "--run-dir", str(home / "r")])
    assert again.exit_code != 0 and "the data of its 1 items changed since the run started" in str(again.exception)


def test_a_line_whose_runs_lost_their_score_is_scored_again_on_resume(home: Path) -> None:
    data = data_file(home, 2)
    model = script(home, ["Final Answer: answer 0", "Final Answer: answer 1"])
    first = invoke(home, run, ["--data", str(data), "--model", model, "--run-dir", str(home / "r")])
    assert first.exit_code == 0, first.output
    with TrajectoryStore.open(home / "trajectories.db") as store:  # as if killed between the line and the score
        store._db.execute("UPDATE runs SET score = NULL")
    again = invoke(home, run, ["--data", str(data), "--resume", "--run-dir", str(home / "r")])
    assert again.exit_code == 0, again.output
    with TrajectoryStore.open(home / "trajectories.db") as store:
        assert sorted(r.score for r in store.runs(suite="toy", with_steps=False)) == [1.0, 1.0]


def test_an_empty_data_file_is_an_error_not_a_zero_item_run(home: Path) -> None:
    empty = home / "empty.jsonl"
    empty.write_text("\n")
    result = invoke(home, run, ["--data", str(empty), "--model", script(home, ["x"])])
    assert isinstance(result.exception, InputDataError) and "holds no items" in str(result.exception)
