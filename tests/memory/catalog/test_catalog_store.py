"""Catalog on real SQLite files and real FAISS indexes, with the hashing embedder (and MiniLM once)."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from agentdistill.memory.catalog import (
    QUERY_FIELDS,
    Catalog,
    CatalogEmbedderMismatch,
    CatalogItem,
    CatalogItemNotFound,
    CatalogNotFound,
    CatalogQuery,
    CorruptCatalog,
    InvalidCatalog,
    InvalidCatalogValue,
    default_catalog,
    load_items,
    packaged_catalog_path,
)
from agentdistill.memory.embedders import HashingEmbedder


def item(id: str, title: str, **fields: object) -> CatalogItem:
    base = dict(
        id=id,
        type="Movie",
        title=title,
        director=(),
        cast=(),
        countries=("United States",),
        release_year=2010,
        rating="PG-13",
        duration_min=100,
        seasons=None,
        genres=("Dramas",),
        description=f"{title} is a film.",
    )
    base.update(fields)
    if base["type"] == "TV Show" and "duration_min" not in fields:
        base["duration_min"], base["seasons"] = None, fields.get("seasons", 1)
    return CatalogItem(**base)  # type: ignore[arg-type]


ITEMS = [
    item("m1", "The Irishman", director=("Martin Scorsese",), cast=("Robert De Niro", "Al Pacino"), release_year=2019,
         rating="R", duration_min=209, genres=("Dramas",), description="An aging hitman recalls his mob years."),
    item("m2", "Dark Skies", genres=("Horror Movies", "Sci-Fi & Fantasy"), release_year=2013, duration_min=97,
         description="A family is haunted by aliens who stalk their suburban home at night."),
    item("m3", "Paris Heist", countries=("France", "Belgium"), genres=("Thrillers", "International Movies"),
         release_year=2004, rating="TV-MA", duration_min=88, description="A crew robs a Paris bank in one night."),
    item("s1", "Stranger Things", type="TV Show", seasons=4, genres=("TV Horror", "TV Sci-Fi & Fantasy"),
         cast=("Winona Ryder",), release_year=2019, rating="TV-14",
         description="Kids in a small town face a monster from another dimension."),
    item("s2", "Baking Friends", type="TV Show", seasons=1, genres=("Reality TV",), countries=(), rating="",
         release_year=2021, description="Amateur bakers compete in a cosy tent."),
    item("m4", "Comedy Night", genres=("Stand-Up Comedy",), release_year=1999, duration_min=60, rating="TV-MA",
         cast=("Al Pacino",), description="A comedian jokes about family road trips."),
]  # fmt: skip


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.build(tmp_path / "cat", ITEMS, HashingEmbedder(128))


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return Catalog.build(
        tmp_path_factory.mktemp("packaged") / "cat", load_items(packaged_catalog_path()), HashingEmbedder(16)
    )


def test_summary_and_round_trip() -> None:
    movie = item("x", "Film", release_year=2019, duration_min=94, genres=("Dramas", "Comedies"), rating="PG-13")
    assert movie.summary() == "Film (Movie, 2019, 94 min, Dramas/Comedies, PG-13)"
    show = item("y", "Show", type="TV Show", seasons=1, rating="", genres=())
    assert show.summary() == "Show (TV Show, 2010, 1 season)"
    assert CatalogItem.from_dict(json.loads(json.dumps(movie.to_dict()))) == movie
    assert item("z", "L", genres=["Dramas", " ", "Comedies "]).genres == ("Dramas", "Comedies")  # lists become tuples
    with pytest.raises(InvalidCatalogValue, match="release_year"):
        item("z", "Bad", release_year="2019")
    with pytest.raises(InvalidCatalogValue, match="title"):
        item("z", "  ")


def test_query_predicate_names_each_violated_field() -> None:
    irishman = ITEMS[0]
    query = CatalogQuery(types=["TV Show"], genres="dramas", year_max=2000, duration_max=120, people=("al  PACINO",))
    assert query.genres == ("dramas",) and query.types == ("TV Show",)  # a lone string is one value
    problems = query.violations(irishman)
    assert [p.split(":")[0] for p in problems] == ["types", "year_max", "duration_max"]
    assert "released 2019 (wanted 2000 or earlier)" in problems[1] and "209 min" in problems[2]
    assert CatalogQuery(exclude_people=("robert de niro",)).violations(irishman) == [
        "exclude_people: with Robert De Niro (wanted not robert de niro)"
    ]
    # runtime bounds constrain movies only, seasons_max shows only
    assert CatalogQuery(duration_max=10).violations(ITEMS[3]) == []
    assert CatalogQuery(seasons_max=2).violations(ITEMS[3]) == ["seasons_max: 4 seasons (wanted at most 2)"]
    assert CatalogQuery(seasons_max=2).violations(irishman) == []
    assert CatalogQuery(ratings=("PG",)).violations(ITEMS[4]) == ["ratings: unrated (wanted PG)"]
    assert CatalogQuery().is_empty() and not query.is_empty()
    assert query.without("types", "year_max").constrained_fields() == ["genres", "duration_max", "people"]
    assert CatalogQuery(**query.to_dict()) == query
    with pytest.raises(InvalidCatalogValue, match="year_min"):
        CatalogQuery(year_min="1990")
    with pytest.raises(InvalidCatalogValue, match="genres"):
        CatalogQuery(genres=[1, 2])


def test_build_open_get_and_find_title(catalog: Catalog, tmp_path: Path) -> None:
    assert len(catalog) == 6 and [i.id for i in catalog.items()] == [i.id for i in ITEMS]  # catalog order kept
    again = Catalog.open(tmp_path / "cat")  # embedder recreated from the recorded spec on first retrieve
    assert again.get("m3") == ITEMS[2]
    assert again.retrieve("aliens haunted suburban home", k=1)[0][0].id == "m2"
    with pytest.raises(CatalogItemNotFound, match="'m1'") as err:
        again.get("The Irishman")  # a title where an id belongs: the error names the id
    assert err.value.suggestions[0] == "m1"
    with pytest.raises(CatalogItemNotFound, match="Did you mean") as err:
        again.get("s3")
    assert {"s1", "s2"} <= set(err.value.suggestions)
    assert again.find_title("the IRISHMAN").id == "m1"
    assert again.find_title("Irishman").id == "m1"  # leading article and case ignored
    assert again.find_title("Stranger Thing").id == "s1"  # fuzzy
    assert again.find_title("Completely Unknown") is None and again.find_title("  ") is None
    vocabulary = again.vocabulary()
    assert vocabulary.types == ("Movie", "TV Show")
    assert vocabulary.ratings == ("PG-13", "R", "TV-14", "TV-MA")  # "" (unrated) is not a value to ask for
    assert "Horror Movies" in vocabulary.genres and list(vocabulary.genres) == sorted(vocabulary.genres, key=str.lower)
    assert vocabulary.countries == ("Belgium", "France", "United States")


def test_filter_matches_the_predicate(catalog: Catalog) -> None:
    cases = {
        CatalogQuery(types=("movie",), year_min=2005): ["m1", "m2"],
        CatalogQuery(genres=("tv horror", "reality tv")): ["s1", "s2"],
        CatalogQuery(exclude_genres=("Dramas",), exclude_countries=("france",)): ["m2", "s1", "s2", "m4"],
        CatalogQuery(countries=("Belgium",)): ["m3"],
        CatalogQuery(people=("Al Pacino",), exclude_ids=("m4",)): ["m1"],
        CatalogQuery(duration_min=90, duration_max=150): ["m2", "s1", "s2"],
        CatalogQuery(ratings=("tv-ma",), exclude_ratings=("R",)): ["m3", "m4"],
        CatalogQuery(exclude_ratings=("R", "TV-14", "PG-13", "TV-MA")): ["s2"],
        CatalogQuery(year_min=2020, year_max=2010): [],
    }
    everything = catalog.items()
    for query, expected in cases.items():
        assert [i.id for i in catalog.filter(query)] == expected, query
        assert [i for i in everything if not query.violations(i)] == catalog.filter(query)
    assert [i.id for i in catalog.filter(CatalogQuery(types=("Movie",)), limit=2)] == ["m1", "m2"]
    assert catalog.filter(CatalogQuery(), limit=0) == []


@pytest.mark.parametrize(
    "hostile", ["'; DROP TABLE items; --", "%", "_", "Dramas%", "Drama_", "O'Brien", '"quoted"', "a\\b", "?", "); --"]
)
def test_user_text_never_becomes_sql(tmp_path: Path, hostile: str) -> None:
    odd = item("odd", f"Title {hostile}", genres=(hostile,), countries=(hostile,), cast=(hostile, "100%"))
    catalog = Catalog.build(tmp_path / "c", [*ITEMS, odd], HashingEmbedder(32))
    for field in ("genres", "countries", "people", "types", "ratings"):
        query = CatalogQuery(**{field: (hostile,)})
        expected = [i for i in catalog.items() if not query.violations(i)]
        assert catalog.filter(query) == expected
        excluded = CatalogQuery(**{f"exclude_{field}" if field != "types" else "exclude_ids": (hostile,)})
        assert catalog.filter(excluded) == [i for i in catalog.items() if not excluded.violations(i)]
    assert [i.id for i in catalog.filter(CatalogQuery(genres=(hostile,)))] == ["odd"]  # exact, no wildcard
    assert catalog.filter(CatalogQuery(people=("100",))) == []
    assert catalog.find_title(f"title {hostile}").id == "odd"
    assert catalog.retrieve(hostile, k=3, among=[hostile, "odd"])[0][0].id == "odd"
    with pytest.raises(CatalogItemNotFound):
        catalog.get(hostile)
    assert len(Catalog.open(tmp_path / "c")) == 7  # the items table is intact


def test_random_queries_over_the_packaged_subset_agree_with_the_predicate(packaged: Catalog) -> None:
    everything = packaged.items()
    vocabulary = packaged.vocabulary()
    people = sorted({p for i in everything[:300] for p in i.people})
    rng = random.Random(8)
    pools = {
        "types": vocabulary.types,
        "genres": vocabulary.genres,
        "countries": vocabulary.countries,
        "ratings": vocabulary.ratings,
        "people": people,
        "exclude_ids": [i.id for i in everything],
    }
    bounds = {"year_min": (1960, 2021), "year_max": (1960, 2021), "duration_min": (20, 180),
              "duration_max": (20, 180), "seasons_max": (1, 6)}  # fmt: skip
    nonempty = 0
    for _ in range(150):
        values: dict[str, object] = {}
        for name in rng.sample(QUERY_FIELDS, rng.randint(1, 4)):
            if name in bounds:
                values[name] = rng.randint(*bounds[name])
            else:
                pool = pools[name.removeprefix("exclude_") if name != "exclude_ids" else name]
                picks = rng.sample(list(pool), rng.randint(1, min(3, len(pool))))
                values[name] = tuple(p.upper() if rng.random() < 0.3 else p for p in picks)  # case must not matter
        query = CatalogQuery(**values)
        expected = [i for i in everything if not query.violations(i)]
        assert packaged.filter(query) == expected, query
        nonempty += bool(expected)
    assert nonempty > 60  # the queries exercised real matches, not just empty results


def test_retrieve_ranks_by_meaning_and_respects_among(catalog: Catalog) -> None:
    hits = catalog.retrieve("kids in a small town face a monster", k=3)
    assert hits[0][0].id == "s1" and len(hits) == 3
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0001
    among = catalog.retrieve("kids in a small town face a monster", k=5, among=["m1", "m3", "nope"])
    assert {i.id for i, _ in among} == {"m1", "m3"}
    assert catalog.retrieve("   ", k=3) == [] and catalog.retrieve("x", k=3, among=[]) == []


def test_rebuild_switches_generations_and_a_failed_build_keeps_the_old(tmp_path: Path) -> None:
    first = Catalog.build(tmp_path / "c", ITEMS[:3], HashingEmbedder(32))
    second = Catalog.build(tmp_path / "c", ITEMS, HashingEmbedder(32))
    assert (first.generation.name, second.generation.name) == ("gen-0001", "gen-0002")
    assert not first.generation.exists() and len(first) == 3 and first.get("m2") == ITEMS[1]  # open readers go on

    class Exploding(HashingEmbedder):
        def encode(self, texts, batch_size=32):  # noqa: ANN001, ANN201  a build killed while embedding
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Catalog.build(tmp_path / "c", ITEMS[:2], Exploding(32))
    survivor = Catalog.open(tmp_path / "c")
    assert len(survivor) == 6 and survivor.generation.name == "gen-0002"
    with pytest.raises(InvalidCatalog, match="'m1' appears twice"):
        Catalog.build(tmp_path / "d", [ITEMS[0], ITEMS[0]], HashingEmbedder(32))
    with pytest.raises(InvalidCatalog, match="at least one item"):
        Catalog.build(tmp_path / "d", [], HashingEmbedder(32))


def test_missing_and_damaged_catalogs_say_how_to_fix(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(CatalogNotFound, match="agentdistill catalog build"):
        Catalog.open(tmp_path / "nothing")
    with pytest.raises(CatalogEmbedderMismatch, match="hashing-128"):
        Catalog.open(catalog.directory, HashingEmbedder(64))
    gen = catalog.generation
    manifest = (gen / "manifest.json").read_text()
    (gen / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptCatalog, match="manifest.json"):
        Catalog.open(catalog.directory)
    (gen / "manifest.json").write_text(json.dumps({**json.loads(manifest), "items": 7}))
    with pytest.raises(CorruptCatalog, match="holds 6 items, the manifest says 7"):
        Catalog.open(catalog.directory)
    (gen / "manifest.json").write_text(manifest)
    db = gen / "catalog.db"
    db.write_bytes(b"garbage" * 100)
    with pytest.raises(CorruptCatalog, match="SQLite cannot read it"):
        Catalog.open(catalog.directory)
    (catalog.directory / "CURRENT").write_text("../../etc\n")
    with pytest.raises(CorruptCatalog, match="not a generation"):
        Catalog.open(catalog.directory)


def test_default_catalog_is_built_once_per_embedder(home: Path) -> None:
    first = default_catalog(home, HashingEmbedder(16))
    assert len(first) == 1500 and first.directory.parent == home / "catalogs"
    built = (first.generation / "manifest.json").stat().st_mtime_ns
    again = default_catalog(home, HashingEmbedder(16))
    assert again.generation == first.generation and (again.generation / "manifest.json").stat().st_mtime_ns == built
    other = default_catalog(home, HashingEmbedder(24))
    assert other.directory != first.directory
    info = again.info()
    assert info["by_type"] == {"Movie": 1034, "TV Show": 466} and info["genres"] == 42
    (first.generation / "catalog.db").write_bytes(b"x")  # a damaged cache is rebuilt, not an error
    assert len(default_catalog(home, HashingEmbedder(16))) == 1500


def test_packaged_subset_is_clean() -> None:
    items = load_items(packaged_catalog_path())
    assert len(items) == 1500 and len({i.id for i in items}) == 1500
    assert {i.type for i in items} == {"Movie", "TV Show"}
    assert all((i.duration_min is None) == (i.type == "TV Show") for i in items)
    assert all((i.seasons is None) == (i.type == "Movie") for i in items)
    assert not any(i.rating.endswith(" min") for i in items)
    assert all(i.description and i.genres for i in items)


def test_catalog_is_shared_across_threads(catalog: Catalog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(n: int) -> int:
        return len(catalog.filter(CatalogQuery(types=("Movie",)))) + len(catalog.retrieve(f"family {n}", k=2))

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(work, range(16))) == {6}


@pytest.mark.integration
def test_packaged_subset_with_minilm(tmp_path: Path) -> None:
    from agentdistill.memory.embedders import make_embedder

    started = time.perf_counter()
    catalog = default_catalog(tmp_path, make_embedder("minilm"))
    # a hang guard, not a speed test: embedding 1500 titles takes ~60 s alone on 2 cores, 2-3x that beside other work
    assert len(catalog) == 1500 and time.perf_counter() - started < 600
    scary = CatalogQuery(genres=("Horror Movies",))
    among = [i.id for i in catalog.filter(scary)]
    hits = catalog.retrieve("a haunted house and a family terrorized by ghosts", k=5, among=among)
    assert len(hits) == 5 and all(i.id in among for i, _ in hits)
    anywhere = catalog.retrieve("stand-up comedian jokes about his life on stage", k=5)
    assert sum("Stand-Up Comedy" in i.genres for i, _ in anywhere) >= 3  # meaning, not shared words
    assert np.isclose(hits[0][1], max(s for _, s in hits))


def test_join_tables_hold_folded_keys(catalog: Catalog) -> None:
    """The join tables hold Python-folded keys, so SQL compares exactly what the predicate compares."""
    db = sqlite3.connect(catalog.generation / "catalog.db")
    rows = set(db.execute("SELECT key FROM item_people WHERE item_seq = 0"))
    assert rows == {("martin scorsese",), ("robert de niro",), ("al pacino",)}
