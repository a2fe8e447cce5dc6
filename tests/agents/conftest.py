"""A tiny real catalog (SQLite + FAISS, hashing embedder) for the recbot tests: cheap, and exact to reason about."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentdistill.memory.catalog import Catalog, CatalogItem
from agentdistill.memory.embedders import HashingEmbedder


def _item(
    id_: str, type_: str, title: str, year: int, genres: tuple[str, ...], description: str, **extra: object
) -> CatalogItem:
    fields = {"director": (), "cast": (), "countries": ("United States",), "rating": "PG-13", "duration_min": None,
              "seasons": None} | extra  # fmt: skip
    if type_ == "Movie" and fields["duration_min"] is None:
        fields["duration_min"] = 100
    if type_ == "TV Show" and fields["seasons"] is None:
        fields["seasons"] = 1
    return CatalogItem(id=id_, type=type_, title=title, release_year=year, genres=genres, description=description,
                       **fields)  # type: ignore[arg-type]  # fmt: skip


def rec_items() -> list[CatalogItem]:
    return [
        _item("m1", "Movie", "The Haunting Hour", 2016, ("Horror Movies",), "A family moves into a haunted house.",
              duration_min=95, rating="R"),
        _item("m2", "Movie", "Night Screams", 2018, ("Horror Movies", "Thrillers"), "A killer stalks a summer camp.",
              duration_min=88, rating="R"),
        _item("m3", "Movie", "Laugh Track", 1994, ("Comedies",), "Two friends take a chaotic road trip to Vegas.",
              duration_min=92, cast=("Jim Carrey",)),
        _item("m4", "Movie", "Office Mayhem", 1998, ("Comedies",), "A clumsy clerk accidentally runs the office.",
              duration_min=85, cast=("Jim Carrey", "Courteney Cox")),
        _item("m5", "Movie", "Long Goodbye Road", 1996, ("Comedies", "Dramas"), "A long comic road trip across Texas.",
              duration_min=150),
        _item("m6", "Movie", "Quiet Hearts", 2019, ("Dramas", "Romantic Movies"), "Strangers fall in love in Paris.",
              duration_min=118, countries=("France",)),
        _item("m7", "Movie", "Paris Nights", 2012, ("Romantic Movies",), "A love story on the streets of Paris.",
              duration_min=101, countries=("France",)),
        _item("m8", "Movie", "Galaxy Run", 2020, ("Sci-Fi & Fantasy", "Action & Adventure"),
              "Space pilots race across the galaxy.", duration_min=130),
        _item("m9", "Movie", "Road Trip Blues", 2005, ("Comedies",), "A funny road trip with three brothers.",
              duration_min=104),
        _item("m10", "Movie", "Old Laughs", 1985, ("Comedies",), "A classic slapstick comedy about a bakery.",
              duration_min=90),
        _item("s1", "TV Show", "Ghost Files", 2019, ("TV Horror",), "Investigators explore haunted houses.", seasons=3,
              rating="TV-MA"),
        _item("s2", "TV Show", "Sitcom Street", 2008, ("TV Comedies",), "Neighbours share a funny street.", seasons=5,
              rating="TV-PG"),
        _item("s3", "TV Show", "Quick Jokes", 2021, ("TV Comedies",), "A short sketch comedy show.", seasons=1,
              rating="TV-14"),
        _item("s4", "TV Show", "Seoul Detectives", 2017, ("Crime TV Shows",), "Detectives solve crimes in Seoul.",
              seasons=2, countries=("South Korea",), rating="TV-14"),
    ]  # fmt: skip


@pytest.fixture
def rec_catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog.build(tmp_path / "catalog", rec_items(), HashingEmbedder(64))
    yield catalog
    catalog.close()
