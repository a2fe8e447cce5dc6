"""Shortening: dead ends cut only when the run still reaches its answer; rewrites kept only with the same action."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.agents.factory import build_agent
from agentdistill.cli import cli
from agentdistill.distill.chat_examples import ChatExample, examples_from_runs
from agentdistill.distill.data import SelectConfig, build_dataset
from agentdistill.distill.shorten import CodeReplay, ShortenConfig, ShortenReport, compress_turns, drop_dead_ends
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import assistant, user
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder, Run


def cell(thought: str, code: str) -> str:
    return f"Thought: {thought}\n```python\n{code}\n```"


RECOVERED = [cell("Divide first.", "ratio = 1 / 0"), cell("Multiply instead, it is simpler here.", "print(6 * 7)"),
             cell("The product is the answer.", "final_answer(42)")]  # fmt: skip
NEEDS_DEAD_END = [cell("Set it, then divide.", "base = 40\nbad = 1 / 0"), cell("Add two.", "final_answer(base + 2)")]


def _run(store: TrajectoryStore, replies: list[str], question: str) -> Run:
    graph = build_agent("codeact", ScriptedModel(replies), kb=None, recorder=Recorder(store, agent="codeact"),
                        max_steps=4)  # fmt: skip
    out = graph.invoke({"question": question})
    store.set_score(out["run_id"], 1.0, {}, suite="gsm8k:train", item_id=question)
    return store.get(out["run_id"])


@pytest.fixture
def store(home: Path):
    with TrajectoryStore.open(home / "trajectories.db") as opened:
        yield opened


def test_a_recovered_dead_end_is_cut_with_its_observation(store: TrajectoryStore) -> None:
    run = _run(store, RECOVERED, "What is 6 times 7?")
    example = examples_from_runs([run])[-1]  # the last call: the whole conversation as context
    shortened, dropped = drop_dead_ends(example, run, CodeReplay())
    assert dropped == 1
    assert all("1 / 0" not in m["content"] for m in shortened.messages)
    assert len(shortened.messages) == len(example.messages) - 2  # the cell and its Observation
    assert shortened.messages[shortened.train_turns[-1]] == example.messages[example.train_turns[-1]]


def test_a_dead_end_that_a_later_cell_depends_on_is_kept(store: TrajectoryStore) -> None:
    run = _run(store, NEEDS_DEAD_END, "What is 40 plus 2?")
    assert run.answer == "42"
    example = examples_from_runs([run])[-1]
    kept, dropped = drop_dead_ends(example, run, CodeReplay())  # without the first cell `base` is undefined
    assert dropped == 0 and kept == example


def test_rewrites_are_kept_only_when_shorter_with_the_same_code() -> None:
    original = RECOVERED[1]
    ids = {"tokenizer": "tok-1", "completion": [1, 2], "finish": "stop"}
    example = ChatExample(id="x", run_id="r", question="q", messages=[user("q"), assistant(original)], train_turns=(1,),
                          agent="codeact", tokens=ids)  # fmt: skip
    teacher = ScriptedModel(["Thought: Multiply."])
    report = ShortenReport()
    revised = compress_turns(example, teacher, "codeact", report, 64)
    assert revised.messages[1]["content"] == "Thought: Multiply.\n```python\nprint(6 * 7)\n```"
    assert report.turns_revised == 1 and revised.tokens is None and revised.id != example.id
    assert "Multiply instead, it is simpler here." in teacher.history[0][0]["content"]  # it saw the reasoning only
    assert "print(6 * 7)" not in teacher.history[0][0]["content"]
    injected = ScriptedModel(["ok ```python\nprint(1)\n``` then"])  # a sentence that smuggles in another cell
    longer = ScriptedModel(["Multiply six by seven because that is what the question asks for, nothing more."])
    assert compress_turns(example, injected, "codeact", report, 64) == example
    assert compress_turns(example, longer, "codeact", report, 64) == example
    assert (report.rejected_other_action, report.rejected_not_shorter) == (1, 1)
    invented = ScriptedModel(["Multiply: 42."])  # a result the reasoning never stated
    assert compress_turns(example, invented, "codeact", report, 64) == example and report.rejected_new_numbers == 1
    bare = ChatExample(id="y", run_id="r", question="q", messages=[user("q"), assistant("final_answer(42)")],
                       train_turns=(1,), agent="codeact")  # fmt: skip
    assert compress_turns(bare, ScriptedModel([]), "codeact", report, 64) == bare  # no reasoning: nothing to ask


def test_distill_shorten_writes_a_new_versioned_dataset(store: TrajectoryStore, home: Path, tmp_path: Path) -> None:
    _run(store, RECOVERED, "What is 6 times 7?")
    data = tmp_path / "data"
    build_dataset(store, SelectConfig(agent="codeact"), data, val_fraction=0.0)
    teacher = tmp_path / "teacher.json"
    teacher.write_text(json.dumps(["Go."] * 6))
    out = tmp_path / "short"
    args = ["--home", str(home), "distill", "shorten", str(data), "--out", str(out), "--teacher",
            f"scripted:{teacher}", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dead_ends_dropped"] >= 1 and report["turns_revised"] >= 1
    assert report["trained_chars_after"] < report["trained_chars_before"]
    info = json.loads((out / "info.json").read_text())
    source = json.loads((data / "info.json").read_text())
    assert info["version"]["shortened_from"] == source["version"]["data_sha256"] != info["version"]["data_sha256"]
    assert info["version"]["shorten"]["teacher"] == f"scripted:{teacher}"
    rows = [json.loads(line) for line in (out / "train.jsonl").open()]
    assert rows and all("1 / 0" not in m["content"] for row in rows for m in row["messages"][:-1])


def test_no_compression_without_a_parser_is_said() -> None:
    from agentdistill.distill.shorten import shorten_examples

    _, report = shorten_examples([], {}, None, ShortenConfig(compress=True))
    assert report.examples == 0 and report.notes
