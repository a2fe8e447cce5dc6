"""build_agent("recbot"): the catalog tools by default, a clear error without a catalog, no max_steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.agents.factory import CatalogRequired, build_agent, default_tools
from agentdistill.memory.catalog import Catalog
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder


def test_recbot_needs_a_catalog_and_gets_the_catalog_tools(rec_catalog: Catalog) -> None:
    with pytest.raises(CatalogRequired, match="--catalog DIR"):
        default_tools("recbot", None)
    with pytest.raises(CatalogRequired, match="default_catalog"):
        build_agent("recbot", ScriptedModel([]), kb=None, recorder=None)
    assert [t.name for t in default_tools("recbot", None, rec_catalog)] == ["filter", "retrieve", "rank", "explain"]


def test_build_agent_runs_a_recbot_turn_and_ignores_max_steps(rec_catalog: Catalog, home: Path) -> None:
    plan = json.dumps({"steps": [{"tool": "filter"}, {"tool": "rank"}]})
    model = ScriptedModel([json.dumps({"type": "TV Show", "genres": ["crime"]}), plan, "A Seoul crime show."])
    with TrajectoryStore.open(home / "t.db") as store:
        graph = build_agent("recbot", model, kb=None, catalog=rec_catalog, recorder=Recorder(store, agent="recbot"),
                            max_steps=3, k=2)  # fmt: skip
        out = graph.invoke({"question": "a korean crime series"})
        [run] = store.runs()
    assert out["recommended"][0] == "s4" and out["preference"]["genres"] == ["Crime TV Shows"]
    assert run.agent == "recbot" and run.status == "ok"
