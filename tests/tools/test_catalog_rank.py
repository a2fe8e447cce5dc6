"""rank, explain and the planner's catalog tools, on a small real catalog built with the hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.tools.base import ToolCall, run_tool
from agentdistill.tools.catalog import (
    QUERY_FIELDS,
    Catalog,
    CatalogItem,
    CatalogQuery,
    Ranked,
    explain,
    make_catalog_tools,
    rank,
)


def movie(id: str, title: str, genres: tuple[str, ...], year: int, description: str, **more: object) -> CatalogItem:
    fields = dict(director=(), cast=(), countries=("United States",), rating="PG-13", duration_min=100, seasons=None)
    fields.update(more)
    return CatalogItem(id=id, type="Movie", title=title, release_year=year, genres=genres, description=description,
                       **fields)  # type: ignore[arg-type]  # fmt: skip


ITEMS = [
    movie("h1", "Night House", ("Horror Movies",), 2020, "A widow finds ghosts haunting her lake house."),
    movie("h2", "Ghost Lake", ("Horror Movies",), 2019, "Ghosts haunt a family at their lake house."),
    movie("h3", "The Attic", ("Horror Movies", "Thrillers"), 2001, "A haunted attic hides ghosts of a family."),
    movie("c1", "Lake Laughs", ("Comedies",), 2018, "Friends joke around at a lake house weekend."),
    movie("d1", "Quiet River", ("Dramas",), 2015, "A grieving father rebuilds his life by the river.", rating="R"),
    movie("t1", "Vault", ("Thrillers",), 2012, "A crew plans a bank heist in Paris.", duration_min=140),
]


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.build(tmp_path / "cat", ITEMS, HashingEmbedder(256))


def test_rank_orders_by_relevance_then_diversifies_over_genres(catalog: Catalog) -> None:
    text = "ghosts haunt a family lake house"
    plain = rank(catalog, ITEMS, text=text, k=3, diversity=0.0)
    assert [r.item.id for r in plain] == ["h2", "h3", "h1"]  # all three ghost stories first
    assert all(isinstance(r, Ranked) and r.fit == 1.0 and r.score == r.relevance for r in plain)
    assert plain[0].relevance >= plain[1].relevance >= plain[2].relevance > 0
    assert plain[0].reasons[-1].startswith("close to the request (")
    varied = rank(catalog, ITEMS, text=text, k=3, diversity=0.7)
    assert varied[0].item.id == "h2" and len({r.item.genres for r in varied}) == 3  # no two share a genre set
    assert rank(catalog, ITEMS, text=text, k=0) == [] and rank(catalog, [], text=text) == []
    with pytest.raises(ValueError, match="diversity"):
        rank(catalog, ITEMS, diversity=1.5)


def test_soft_wishes_rank_without_filtering(catalog: Catalog) -> None:
    soft = CatalogQuery(genres=("Horror Movies",), year_min=2010, exclude_ratings=("R",))
    ranked = rank(catalog, ITEMS, soft=soft, k=6, diversity=0.0)
    assert [r.item.id for r in ranked][:2] == ["h1", "h2"]  # meet all three wishes; ties keep candidate order
    fits = {r.item.id: r.fit for r in ranked}
    assert fits["h3"] == pytest.approx(2 / 3) and fits["d1"] == pytest.approx(1 / 3)
    assert len(ranked) == 6  # nothing was dropped: soft wishes only order
    assert "misses: released 2001 (wanted 2010 or later)" in next(r for r in ranked if r.item.id == "h3").reasons
    both = rank(catalog, ITEMS, text="bank heist in Paris", soft=CatalogQuery(duration_max=120), k=6, diversity=0)
    heist = next(r for r in both if r.item.id == "t1")  # the most relevant, but 140 min: its fit is 0
    assert heist.relevance == max(r.relevance for r in both) and heist.score == pytest.approx(0.5 * heist.relevance)
    assert both[0].item.id != "t1" and both[0].score == pytest.approx(0.5 * both[0].relevance + 0.5)
    duplicates = rank(catalog, [ITEMS[0], ITEMS[0], ITEMS[1]], k=5)
    assert [r.item.id for r in duplicates] == ["h1", "h2"]


def test_explain_names_met_missed_and_broken_wishes() -> None:
    hard = CatalogQuery(types=("Movie",), exclude_genres=("Comedies",), year_max=2000)
    soft = CatalogQuery(genres=("Thrillers",), duration_max=90)
    text = explain(ITEMS[2], hard, soft, "a haunted attic with ghosts")
    assert text.startswith("The Attic (Movie, 2001, 100 min, Horror Movies/Thrillers, PG-13). meets: a Movie")
    assert "genres Thrillers (wanted Thrillers)" in text
    assert "misses: 100 min (wanted at most 90 min)" in text
    assert "breaks (relaxed): released 2001 (wanted 2000 or earlier)" in text
    assert text.endswith("matches the request on: haunted, attic, ghosts.")
    assert explain(ITEMS[0], CatalogQuery(), CatalogQuery()).endswith("no stated wishes to compare it with.")


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
