"""`agentdistill catalog ...` through click's CliRunner, on real catalogs in the temporary home (hashing embedder)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from agentdistill.cli import cli
from agentdistill.errors import InputDataError
from agentdistill.memory.catalog import Catalog, CatalogNotFound

FAST = ("--embedder", "hashing:32")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["catalog", *args], catch_exceptions=True)


def test_help_lists_every_subcommand() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("build", "import", "info", "search", "filter"):
        assert command in result.output
    filter_help = invoke("filter", "--help").output
    assert "--exclude-genre" in filter_help and "--seasons-max" in filter_help and "--json" in filter_help


def test_build_then_filter_search_and_info_on_the_shipped_catalog(home: Path) -> None:
    built = invoke("build", *FAST, "--json")
    assert built.exit_code == 0, built.output
    info = json.loads(built.output)
    assert info["items"] == 1500 and info["embedder"] == "hashing-32"
    assert Path(info["directory"]).parent == home / "catalogs"

    result = invoke("filter", *FAST, "--type", "movie", "--genre", "Horror Movies", "--year-min", "2015", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["count"] > 5 and data["query"] == {"types": ["movie"], "genres": ["Horror Movies"], "year_min": 2015}
    assert all(
        i["type"] == "Movie" and "Horror Movies" in i["genres"] and i["release_year"] >= 2015 for i in data["items"]
    )
    assert len(data["items"]) == min(20, data["count"])

    result = invoke("search", "ghosts haunt a family", *FAST, "-k", "3", "--type", "TV Show", "--json")
    hits = json.loads(result.output)
    assert result.exit_code == 0 and len(hits) == 3 and all(h["type"] == "TV Show" for h in hits)
    assert hits[0]["score"] >= hits[-1]["score"]

    first = data["items"][0]["id"]
    narrowed = invoke("filter", *FAST, "--type", "Movie", "--genre", "horror movies", "--year-min", "2015",
                      "--exclude-id", first, "--json")  # fmt: skip
    rest = json.loads(narrowed.output)
    assert rest["count"] == data["count"] - 1 and first not in [i["id"] for i in rest["items"]]
    table = invoke("filter", *FAST, "--genre", "Horror Movies", "--limit", "2")
    assert table.exit_code == 0 and "titles match (first 2)" in table.output and "Horror Movies" in table.output

    shown = invoke("info", "--catalog", info["directory"])  # the recorded embedder is used: no --embedder needed
    assert shown.exit_code == 0 and "hashing-32" in shown.output and "1500" in shown.output


def test_import_with_a_mapping_then_use_it(tmp_path: Path) -> None:
    source = tmp_path / "mine.csv"
    source.write_text(
        "key,kind,name,year,country,genres,duration,description\n"
        'k1,Movie,Quiet Lake,2001,"Norway, Sweden",Dramas,101 min,A fisherman and his daughter.\n'
        "k2,TV Show,Loud City,2019,United States,TV Comedies,2 Seasons,Roommates fight over a parking spot.\n",
        encoding="utf-8",
    )
    out = tmp_path / "mine"
    maps = ("--map", "id=key", "--map", "type=kind", "--map", "title=name", "--map", "release_year=year")
    result = invoke("import", str(source), "--out", str(out), *maps, "--map", "countries=country", *FAST, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["items"] == 2
    assert Catalog.open(out).get("k1").countries == ("Norway", "Sweden")
    found = json.loads(invoke("filter", "--catalog", str(out), "--country", "sweden", "--json").output)
    assert [i["id"] for i in found["items"]] == ["k1"]

    bad = invoke("import", str(source), "--out", str(out), "--map", "id=nope", *FAST)
    assert isinstance(bad.exception, InputDataError) and "mapped column 'nope'" in str(bad.exception)
    assert invoke("import", str(source), "--map", "idkey", *FAST).exit_code == 2  # not OURS=THEIRS
    assert len(Catalog.open(out)) == 2  # the failed imports changed nothing


def test_a_missing_catalog_is_a_one_line_error(tmp_path: Path) -> None:
    result = invoke("info", "--catalog", str(tmp_path / "nowhere"))
    assert isinstance(result.exception, CatalogNotFound)
    assert "agentdistill catalog build" in str(result.exception)
