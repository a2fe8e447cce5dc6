"""langgraph.json names a factory for every agent, and each builds a graph that answers (scripted model)."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import pytest

from agentdistill import studio
from agentdistill.agents.factory import AGENTS
from agentdistill.memory.trajectories import TrajectoryStore

ROOT = Path(__file__).resolve().parents[1]


def test_langgraph_json_exposes_every_agent_through_an_existing_factory() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert set(config["graphs"]) == set(AGENTS)
    for name, target in config["graphs"].items():
        path, _, attr = target.partition(":")
        assert (ROOT / path).is_file() and path.endswith("agentdistill/studio.py"), target
        assert callable(getattr(importlib.import_module("agentdistill.studio"), attr)), name


@pytest.mark.parametrize("agent", ["react", "cot"])
def test_a_factory_builds_the_agent_with_the_model_the_run_configures(agent: str, home: Path, tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["Thought: I know it.\nFinal Answer: Canberra"]))
    graph = asyncio.run(getattr(studio, agent)({"configurable": {"model": f"scripted:{replies}"}}))
    out = graph.invoke({"question": "What is the capital of Australia?"})
    assert (out["answer"], out["status"]) == ("Canberra", "ok")
    [run] = TrajectoryStore.open(home / "trajectories.db").runs()  # recorded like any CLI run
    assert run.agent == agent and run.answer == "Canberra"
