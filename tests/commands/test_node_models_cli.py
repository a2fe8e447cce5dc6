"""`--node-model NAME=SPEC` and the fallback flags of `bench run` and `ask`, with scripted students and teachers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentdistill.agents.fallback_checks import UnknownNodeName
from agentdistill.benchmarks.results import RunDir
from agentdistill.commands.bench_run import ResumeMismatch, run
from agentdistill.commands.chat import ask
from agentdistill.config import Settings
from agentdistill.memory.trajectories import TrajectoryStore


def data_file(home: Path, n: int) -> Path:
    path = home / "toy.jsonl"
    rows = [{"id": f"q{i}", "question": f"question {i}?", "answer": f"answer {i}"} for i in range(n)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def script(home: Path, name: str, replies: list[str]) -> str:
    path = home / f"{name}.json"
    path.write_text(json.dumps(replies), encoding="utf-8")
    return f"scripted:{path}"


def invoke(home: Path, command, args: list[str]) -> Result:  # noqa: ANN001 - a click command
    return CliRunner().invoke(command, args, obj=Settings(home=home))  # type: ignore[arg-type]


def test_bench_run_with_a_node_student_reports_its_fallback_rate(home: Path) -> None:
    student = script(home, "student", ["Final Answer: answer 0", "I am not sure", "Final Answer: answer 2"])
    teacher = script(home, "teacher", ["Final Answer: answer 1"])
    args = ["--data", str(data_file(home, 3)), "--model", teacher, "--node-model", f"step={student}"]
    result = invoke(home, run, [*args, "--run-dir", str(home / "r"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["summary"]["correct"] == 3 and out["name"] == f"react/{teacher}[step={student}]"
    nodes = out["node_models"]
    assert (nodes["calls"], nodes["student_calls"], nodes["student_answers"]) == (3, 3, 2)
    assert nodes["fallbacks"] == {"unparsable": 1} and nodes["fallback_rate"] == pytest.approx(1 / 3)
    spec = RunDir.open(home / "r").spec
    assert spec.node_models == {"step": student} and spec.fallback == {"samples": 1, "temperature": 0.7,
                                                                       "min_agreement": 0.5}  # fmt: skip
    with TrajectoryStore.open(home / "trajectories.db") as store:
        steps = sorted((r.item_id, s.model, bool(s.data)) for r in store.runs() for s in r.steps if s.kind == "model")
    assert steps == [("q0", student, False), ("q1", teacher, True), ("q2", student, False)]

    other = invoke(home, run, [*args[:4], "--node-model", f"policy={student}", "--run-dir", str(home / "r"),
                               "--resume"])  # fmt: skip
    assert isinstance(other.exception, ResumeMismatch) and "node_models" in str(other.exception)


def test_bench_run_table_and_no_fallback(home: Path) -> None:
    student = script(home, "student", ["Final Answer: answer 0", "I am not sure"])
    args = ["--data", str(data_file(home, 2)), "--model", script(home, "teacher", []), "--node-model",
            f"policy={student}", "--no-fallback", "--max-steps", "1"]  # fmt: skip
    result = invoke(home, run, args)
    assert result.exit_code == 0, result.output
    assert "fallback rate" in result.stdout and "0.000 (none)" in result.stdout
    assert "node-model calls" in result.stdout and "2 of 2" in result.stdout and "0.500 (1/2)" in result.stdout
    assert "errors / timeouts" in result.stdout and "0 / 0" in result.stdout  # q1 ran out of steps, nothing broke


def test_unknown_node_names_and_stray_fallback_flags_fail_before_the_run(home: Path) -> None:
    data, teacher = str(data_file(home, 1)), script(home, "teacher", [])
    wrong = invoke(home, run, ["--data", data, "--agent", "lag", "--model", teacher, "--node-model", "decompse=x:y"])
    assert isinstance(wrong.exception, UnknownNodeName)
    assert "decompose, policy, read, resolve, synthesize. Did you mean 'decompose'?" in str(wrong.exception)
    stray = invoke(home, run, ["--data", data, "--model", teacher, "--fallback-samples", "3"])
    assert stray.exit_code == 2 and "--node-model NAME=SPEC" in stray.output
    assert not (home / "bench").exists()


def test_ask_with_a_node_student_falls_back_to_the_model(home: Path) -> None:
    student = script(home, "student", ["I am not sure"])
    teacher = script(home, "teacher", ["Final Answer: 1025"])
    result = invoke(home, ask, ["What is 2^10 + 1?", "--model", teacher, "--kb", "none", "--node-model",
                                f"step={student}"])  # fmt: skip
    assert (result.exit_code, result.stdout) == (0, "1025\n"), result.output
    with TrajectoryStore.open(home / "trajectories.db") as store:
        [run_] = store.runs()
    assert run_.steps[0].model == teacher and run_.steps[0].data["fallback"]["text"] == "I am not sure"
