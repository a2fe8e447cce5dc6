"""rank and explain, on a small real catalog built with the hashing embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.memory.catalog import Catalog, CatalogQuery, Ranked, explain, rank
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.testing.catalogs import small_catalog_items

ITEMS = small_catalog_items()


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
