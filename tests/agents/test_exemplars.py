"""Few-shot exemplars from the agent's own solved runs: reading a dataset, choosing by words, replaying turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.agents.exemplars import ExemplarBank, ExemplarsError, exemplar_turns
from agentdistill.agents.factory import build_agent, prompt_hash
from agentdistill.models.scripted import ScriptedModel

SYSTEM = {"role": "system", "content": "You solve tasks by writing Python code."}


def example(run: str, question: str, replies: list[str], label: str = "positive") -> dict:
    messages = [SYSTEM, {"role": "user", "content": f"Task: {question}"}]
    for i, reply in enumerate(replies):
        if i:
            messages.append({"role": "user", "content": f"Observation:\n{i}"})
        messages.append({"role": "assistant", "content": reply})
    return {"run_id": run, "question": question, "messages": messages, "label": label}


APPLES = "Tom picks apples from trees and sells the apples at the market. How much money does he make?"
TRAINS = "A train travels between two stations at constant speed. How long is the journey?"


def write_dataset(path: Path) -> Path:
    rows = [
        example("r1", APPLES, ["Thought: a\n```python\nprint(1)\n```"]),  # the run's first call only
        example("r1", APPLES, ["Thought: a\n```python\nprint(1)\n```", "```python\nfinal_answer(6)\n```"]),
        example("r2", TRAINS, ["Thought: t\n```python\nfinal_answer(3)\n```"]),
        example("r3", "Anna sells apples at the market.", ["wrong"], label="negative"),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_each_run_is_replayed_whole_without_its_system_prompt_and_negatives_are_left_out(tmp_path: Path) -> None:
    bank = ExemplarBank.load(write_dataset(tmp_path / "train.jsonl"))
    assert sorted(e.question for e in bank.exemplars) == sorted([APPLES, TRAINS])
    [apples] = [e for e in bank.exemplars if e.question == APPLES]
    assert [m["role"] for m in apples.turns] == ["user", "assistant", "user", "assistant"]
    assert apples.turns[-1]["content"].endswith("final_answer(6)\n```")


def test_the_closest_story_wins_and_names_numbers_and_the_question_itself_do_not_count(tmp_path: Path) -> None:
    bank = ExemplarBank.load(write_dataset(tmp_path / "train.jsonl"))
    question = "Maria sells 12 apples she picks at the market for 3 dollars each. How much does she make?"
    assert [e.question for e in bank.select(question, 2)] == [APPLES, TRAINS]
    assert [e.question for e in bank.select("Tom rides a train for 12 hours.", 1)] == [TRAINS]  # not "Tom"
    assert [e.question for e in bank.select(APPLES, 5)] == [TRAINS]  # a train item never sees its own run
    turns = exemplar_turns(bank.select(question, 2))
    assert turns[0]["content"] == f"Task: {TRAINS}" and turns[-1]["content"].endswith("final_answer(6)\n```")


def test_a_distill_out_dir_is_read_through_its_data_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_dataset(tmp_path / "data" / "train.jsonl")
    assert len(ExemplarBank.load(tmp_path).exemplars) == 2


def test_bad_files_name_the_file_the_line_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(example("r1", APPLES, ["x"])) + "\n{not json\n")
    with pytest.raises(ExemplarsError, match=r"bad.jsonl, line 2: not a dataset example"):
        ExemplarBank.load(bad)
    with pytest.raises(ExemplarsError, match="distill collect"):
        ExemplarBank.load(tmp_path / "missing.jsonl")
    negatives = tmp_path / "neg.jsonl"
    negatives.write_text(json.dumps(example("r1", APPLES, ["x"], label="negative")) + "\n")
    with pytest.raises(ExemplarsError, match="no solved run"):
        ExemplarBank.load(negatives)


def test_codeact_shows_the_chosen_runs_between_its_system_prompt_and_the_task(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "train.jsonl")
    model = ScriptedModel(["Thought: done\n```python\nfinal_answer(36)\n```"])
    graph = build_agent("codeact", model, exemplars=str(data), exemplars_k=1)
    out = graph.invoke({"question": "Maria sells 12 apples at the market for 3 dollars each. How much?"})
    assert out["answer"] == "36"
    [seen] = model.history
    assert [m["role"] for m in seen] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert seen[1]["content"] == f"Task: {APPLES}" and "Maria" in seen[-1]["content"]


def test_the_prompt_hash_follows_the_exemplars_content(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "train.jsonl")
    before = prompt_hash("codeact", {"exemplars": str(data)})
    assert before != prompt_hash("codeact", {})
    data.write_text(data.read_text().replace("final_answer(6)", "final_answer(7)"))
    assert prompt_hash("codeact", {"exemplars": str(data)}) != before
