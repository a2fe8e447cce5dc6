"""Dataset versioning: teacher, prompt hash, data sha256 and filters; mixing is never silent; HF export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.agents.factory import prompt_hash
from agentdistill.agents.react import build_react_graph
from agentdistill.distill.data import MixedDataset, SelectConfig, build_dataset
from agentdistill.distill.workflow.plan import DatasetMismatch, check_dataset
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder


def search(query: str, k: int = 3) -> str:
    """Search the knowledge base for `query`."""
    return f"[1] Passage about {query}."


@pytest.fixture
def store(home: Path) -> TrajectoryStore:
    with TrajectoryStore.open(home / "trajectories.db") as opened:
        yield opened


def record(store: TrajectoryStore, question: str, *, teacher: str, prompts: str) -> None:
    replies = ['Thought: look\nAction: search\nAction Input: {"query": "x"}', f"Final Answer: {question[:5]}"]
    graph = build_react_graph(ScriptedModel(replies, spec=teacher), [Tool.from_function(search)],
                              recorder=Recorder(store, agent="react", meta={"prompt_hash": prompts}))  # fmt: skip
    out = graph.invoke({"question": question})
    store.set_score(out["run_id"], 1.0, {"em": 1.0}, suite="toy")


def test_a_dataset_records_its_version_and_exports_hf(store: TrajectoryStore, tmp_path: Path) -> None:
    for i in range(3):
        record(store, f"Question number {i}?", teacher="scripted:big", prompts="p1")
    info = build_dataset(store, SelectConfig(agent="react"), tmp_path / "ds")
    version = json.loads((tmp_path / "ds" / "info.json").read_text())["version"]
    assert version == info.version
    assert version["teachers"] == ["scripted:big"] and version["prompt_hashes"] == ["p1"]
    assert len(version["data_sha256"]) == 64 and version["filters"]["agent"] == "react"
    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "ds" / "hf"))["train"].num_rows == info.train
    again = build_dataset(store, SelectConfig(agent="react"), tmp_path / "ds2")
    assert again.version["data_sha256"] == version["data_sha256"]  # same runs, same bytes, same hash


def test_two_teachers_or_two_prompt_versions_are_refused_unless_allowed(store: TrajectoryStore, tmp_path: Path) -> None:
    record(store, "Question one?", teacher="scripted:big", prompts="p1")
    record(store, "Question two?", teacher="scripted:small", prompts="p1")
    with pytest.raises(MixedDataset, match="mix 2 teachers: scripted:big, scripted:small.*--model SPEC.*--allow-mixed"):
        build_dataset(store, SelectConfig(agent="react"), tmp_path / "ds")
    assert build_dataset(store, SelectConfig(agent="react", model="scripted:big"), tmp_path / "one").runs == 1
    mixed = build_dataset(store, SelectConfig(agent="react", allow_mixed=True), tmp_path / "both")
    assert mixed.version["teachers"] == ["scripted:big", "scripted:small"]
    record(store, "Question three?", teacher="scripted:big", prompts="p2")
    with pytest.raises(MixedDataset, match="prompt versions: prompt_hash p1, prompt_hash p2"):
        build_dataset(store, SelectConfig(agent="react", model="scripted:big"), tmp_path / "ds3")
    only = build_dataset(store, SelectConfig(agent="react", model="scripted:big", prompt_hash="p2"), tmp_path / "p2")
    assert only.runs == 1 and only.dropped.get("prompt") == 1


def test_a_plan_refuses_a_dataset_of_another_teacher_or_prompt(tmp_path: Path) -> None:
    info = {"version": {"teachers": ["local:qwen2.5-coder-0.5b"], "prompt_hashes": ["aaa"]}}
    path = tmp_path / "data" / "info.json"
    check_dataset(info, teacher="local:qwen2.5-coder-0.5b", prompt_hash="aaa", path=path)
    with pytest.raises(
        DatasetMismatch, match=r"runs of local:qwen2.5-coder-0.5b, but the plan's teacher is local:qwen"
    ):
        check_dataset(info, teacher="local:qwen2.5-coder-1.5b", prompt_hash="aaa", path=path)
    with pytest.raises(DatasetMismatch, match="prompt_hash aaa, but the plan's prompts hash to bbb"):
        check_dataset(info, teacher="local:qwen2.5-coder-0.5b", prompt_hash="bbb", path=path)
    check_dataset({}, teacher="x", prompt_hash="y", path=path)  # a dataset from before versioning: nothing to check


def test_the_prompt_hash_follows_templates_and_options(tmp_path: Path) -> None:
    assert prompt_hash("codeact", {}) == prompt_hash("codeact", {})
    assert prompt_hash("codeact", {}) != prompt_hash("codeact", {"ftp": True})
    (tmp_path / "codeact_system.txt").write_text("a different system prompt {tools} {question}")
    assert prompt_hash("codeact", {}, tmp_path) != prompt_hash("codeact", {})


def test_min_metrics_keeps_only_runs_whose_stored_metric_is_high_enough(store: TrajectoryStore, tmp_path: Path) -> None:
    record(store, "Parse one?", teacher="scripted:big", prompts="p1")
    record(store, "Parse two?", teacher="scripted:big", prompts="p1")
    first, second = (r.id for r in store.runs(agent="react"))
    store.set_score(first, 0.0, {"turn_parse_accuracy": 1.0}, suite="toy")  # session missed, parse was right
    store.set_score(second, 1.0, {"turn_parse_accuracy": 0.5}, suite="toy")
    select = SelectConfig(agent="react", min_score=None, min_metrics={"turn_parse_accuracy": 1.0})
    info = build_dataset(store, select, tmp_path / "parses")
    assert info.runs == 1 and info.dropped.get("min_metrics") == 1
