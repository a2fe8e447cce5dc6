"""Distilling the materials hierarchy: `distill run --agent materials --suite materials-sample` end to end
(scripted teacher, tiny random student), every level's calls becoming examples of their own role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.benchmarks.suites.registry import get_suite, load_items
from agentdistill.cli import cli
from agentdistill.distill.data import agent_roles, load_examples
from agentdistill.distill.workflow.plan import NotEnoughItems, split_items


def teacher_script(items) -> list[str]:  # noqa: ANN001 - suite items
    """What a teacher that looks every answer up writes: delegate, search, report, answer citing the id."""
    replies = []
    for item in items:
        gold, meta = item.answers[0], item.meta
        replies += [
            f"Delegate: data\nTask: {item.question}",
            f'Thought: look it up\nAction: search_formula\nAction Input: {{"formula": "{meta["formula"]}"}}',
            f"Thought: I now know the answer\nFinal Answer: {gold} ({meta['material_id']})",
            f"Final Answer: {gold} ({meta['material_id']})",
        ]
    return replies


@pytest.mark.integration
def test_distill_run_materials_end_to_end(tmp_path: Path, tiny_model_dir: Path, home: Path) -> None:
    train, held_out = split_items(get_suite("materials-sample"), None, 4, 1)
    teacher = tmp_path / "teacher.json"
    teacher.write_text(json.dumps(teacher_script(train)), encoding="utf-8")
    out = tmp_path / "out"
    plan = ["--agent", "materials", "--suite", "materials-sample", "--teacher", f"scripted:{teacher}", "--student",
            f"hf:{tiny_model_dir}", "--train-limit", "4", "--eval-limit", "1", "--train-steps", "2", "--batch-size",
            "2", "--grad-accum", "1", "--lora-r", "4", "--student-runtime", "transformers", "--embedder",
            "hashing:64", "--max-steps", "2", "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, ["--home", str(home), "distill", "run", *plan])
    assert result.exit_code == 0, result.output

    collected = [json.loads(line) for line in (out / "collect" / "results.jsonl").read_text().splitlines()]
    assert len(collected) == 4 and all(r["correct"] for r in collected), collected
    info = json.loads((out / "data" / "info.json").read_text())
    assert info["runs"] == 4 and info["select"]["roles"] == list(agent_roles("materials"))
    examples = [*load_examples(out / "data" / "train.jsonl"), *load_examples(out / "data" / "val.jsonl")]
    # per run: the supervisor's two calls (two examples: its second prompt is rebuilt, not extended) and one data
    # assistant conversation (its second call's prompt extends the first, so the two merge)
    roles = sorted(e.role for e in examples)
    assert (roles.count("supervisor"), roles.count("data.policy"), len(roles)) == (8, 4, 12)
    data = next(e for e in examples if e.role == "data.policy")
    assert "Materials Project records" in data.messages[0]["content"]  # the data assistant's own system prompt
    assert data.messages[-1]["content"].startswith("Thought: I now know the answer\nFinal Answer:")
    assert any(
        m["content"].startswith("Observation: ") and "most stable first" in m["content"]
        for m in data.messages
        if m["role"] == "user"
    )  # the real store's listing, seen by the teacher

    report = json.loads(result.stdout)
    assert [r["spec"]["agent"] for r in report["runs"]] == ["materials"] * 3
    for label in ("teacher", "base-student", "student"):
        lines = (out / "eval" / label / "results.jsonl").read_text().splitlines()
        assert [json.loads(line)["item_id"] for line in lines] == [held_out[0].id]
    assert (out / "student" / "merged" / "config.json").is_file()


def test_split_keeps_each_formula_on_one_side_and_mixes_the_kinds() -> None:
    train, held_out = split_items(get_suite("materials-sample"), None, 60, 30)
    assert len(train) == 60 and len(held_out) == 30
    held_groups = {g for item in held_out for g in item.meta["groups"]}
    assert all(held_groups.isdisjoint(item.meta["groups"]) for item in train)
    # the file lists the kinds one after another; both slices hold every kind of question all the same
    kinds = {item.meta["kind"] for item in load_items(get_suite("materials-sample"), None)}
    assert {item.meta["kind"] for item in held_out} == kinds
    assert len({item.meta["kind"] for item in train}) >= 6
    # the held-out slice does not depend on the train slice's size
    assert split_items(get_suite("materials-sample"), None, 5, 30)[1] == held_out


def test_split_too_large_names_the_limit() -> None:
    with pytest.raises(NotEnoughItems, match="share nothing with the 50 held-out ones.*--train-limit"):
        split_items(get_suite("materials-sample"), None, 150, 50)
