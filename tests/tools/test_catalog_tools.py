"""The planner's catalog tools, on a small real catalog built with the hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.memory.catalog import QUERY_FIELDS, Catalog, CatalogQuery
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.testing.catalogs import small_catalog_items
from agentdistill.tools.base import ToolCall, run_tool
from agentdistill.tools.catalog import make_catalog_tools

ITEMS = small_catalog_items()


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.build(tmp_path / "cat", ITEMS, HashingEmbedder(256))


def test_tools_have_one_argument_per_query_field(catalog: Catalog) -> None:
    tools = {t.name: t for t in make_catalog_tools(catalog)}
    assert list(tools) == ["filter", "retrieve", "rank", "explain"]
    for name in ("filter", "rank", "explain"):
        properties = tools[name].parameters["properties"]
        assert set(QUERY_FIELDS) <= set(properties)
        assert properties["genres"] == {"type": "array", "items": {"type": "string"}, "default": None, "nullable": True}
        assert properties["year_min"]["type"] == "integer"
    assert tools["explain"].parameters["required"] == ["ids"]
    assert "Horror Movies" in tools["filter"].description and tools["filter"].description.startswith("Hard filter")


def test_a_plan_runs_through_the_tools(catalog: Catalog) -> None:
    by_name = {t.name: t for t in make_catalog_tools(catalog)}
    filtered = run_tool(by_name, ToolCall("filter", {"genres": ["horror movies"], "year_min": "2010"}))
    assert filtered.error_kind is None
    found = json.loads(filtered.text)
    assert found["count"] == 2 and [i["id"] for i in found["items"]] == ["h1", "h2"]
    ids = [i["id"] for i in found["items"]]
    retrieved = json.loads(run_tool(by_name, ToolCall("retrieve", {"text": "widow", "among": ids, "k": 1})).text)
    assert [i["id"] for i in retrieved["items"]] == ["h1"]
    ranked = json.loads(run_tool(by_name, ToolCall("rank", {"ids": ids, "text": "family ghosts", "k": 2})).text)
    assert [i["id"] for i in ranked["items"]] == ["h2", "h1"] and ranked["items"][0]["reasons"]
    everything = json.loads(by_name["rank"].fn(exclude_genres=["Horror Movies"], k=10, diversity=0))
    order = [i["id"] for i in everything["items"]]  # no ids: the whole catalog, soft wishes only order it
    assert len(order) == 6 and set(order[:3]) == {"c1", "d1", "t1"}
    explained = json.loads(
        run_tool(by_name, ToolCall("explain", {"ids": ["h2"], "genres": ["Horror Movies"], "exclude_ids": ["h1"]})).text
    )
    assert explained["explanations"][0]["id"] == "h2" and "meets: " in explained["explanations"][0]["explanation"]


def test_tool_faults_come_back_as_errors_the_model_can_fix(catalog: Catalog) -> None:
    by_name = {t.name: t for t in make_catalog_tools(catalog)}

    def call(name: str, **args: object) -> str:
        result = run_tool(by_name, ToolCall(name, args))
        assert result.error_kind in ("tool_error", "bad_arguments"), result.text
        return result.text

    assert "no genre 'horror'. Did you mean 'Horror Movies'?" in call("filter", genres=["horror"])
    assert "no type 'Film'. Valid values: Movie." in call("filter", types=["Film"])
    assert "limit must be between" in call("filter", limit=0)
    assert "'year_min' must be int" in call("filter", year_min="recent")
    assert "text is empty" in call("retrieve", text=" ")
    assert "unknown id(s) 'Ghost Lake'" in call("rank", ids=["Ghost Lake"]) and "'h2'" in call(
        "rank", ids=["Ghost Lake"]
    )
    assert "diversity must be" in call("rank", diversity=2)
    assert "hard names unknown field(s) 'genre'" in call("explain", ids=["h1"], hard=["genre"])
    assert "ids is empty" in call("explain", ids=[])
    assert "missing required argument 'ids'" in call("explain")


def test_hostile_text_in_tool_arguments_is_only_data(catalog: Catalog) -> None:
    by_name = {t.name: t for t in make_catalog_tools(catalog)}
    hostile = "'; DROP TABLE items; --"
    out = json.loads(run_tool(by_name, ToolCall("filter", {"people": [hostile], "exclude_people": ["%"]})).text)
    assert out == {"count": 0, "items": []}
    assert "unknown id(s)" in run_tool(by_name, ToolCall("rank", {"ids": [hostile]})).text
    assert json.loads(run_tool(by_name, ToolCall("retrieve", {"text": hostile, "k": 2})).text)["items"]
    assert len(catalog.filter(CatalogQuery())) == 6
