"""`ask` and `chat` with `--agent recbot --catalog DIR` and a scripted model: titles printed, threads revise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentdistill.commands.chat import ask, chat
from agentdistill.memory.catalog import Catalog, CatalogItem
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.trajectories import TrajectoryStore

PLAN = json.dumps({"steps": [{"tool": "filter"}, {"tool": "retrieve"}, {"tool": "rank"}, {"tool": "explain"}]})


def movie(id_: str, title: str, year: int, genres: tuple[str, ...], description: str) -> CatalogItem:
    return CatalogItem(id=id_, type="Movie", title=title, director=(), cast=(), countries=("United States",),
                       release_year=year, rating="PG-13", duration_min=95, seasons=None, genres=genres,
                       description=description)  # fmt: skip


@pytest.fixture
def catalog_dir(home: Path) -> Path:
    items = [
        movie("a", "Scream Night", 2015, ("Horror Movies",), "A masked killer haunts a town."),
        movie("b", "Ghost Manor", 2012, ("Horror Movies",), "A haunted manor."),
        movie("c", "Laugh Riot", 1995, ("Comedies",), "Friends on a silly road trip."),
        movie("d", "Office Gags", 1999, ("Comedies",), "Pranks at the office."),
    ]
    Catalog.build(home / "cat", items, HashingEmbedder(32)).close()
    return home / "cat"


def script(home: Path, replies: list[str]) -> str:
    path = home / "script.json"
    path.write_text(json.dumps(replies), encoding="utf-8")
    return f"scripted:{path}"


def invoke(command, args: list[str], stdin: str | None = None) -> Result:  # noqa: ANN001 - a click command
    return CliRunner().invoke(command, args, input=stdin, catch_exceptions=False)


def test_ask_recbot_prints_the_recommended_titles(home: Path, catalog_dir: Path) -> None:
    model = script(home, ['{"type": "Movie", "genres": ["comedy"]}', PLAN, "Two comedies for you."])
    result = invoke(ask, ["--agent", "recbot", "--catalog", str(catalog_dir), "--model", model, "a comedy movie"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Two comedies for you."
    assert {lines[1][:3], lines[2][:3]} == {"1. ", "2. "} and len(lines) == 3
    assert "Laugh Riot (Movie, 1995, 95 min, Comedies, PG-13)" in result.output
    assert "Office Gags (Movie, 1999, 95 min, Comedies, PG-13)" in result.output


def test_ask_recbot_json_lists_the_picks(home: Path, catalog_dir: Path) -> None:
    model = script(home, ['{"genres": ["horror"]}', PLAN, "Scary ones."])
    args = ["--agent", "recbot", "--catalog", str(catalog_dir), "--model", model, "--json", "something scary"]
    out = json.loads(invoke(ask, args).output)
    assert out["status"] == "ok" and out["steps"] == 3 and out["tool_calls"] == 4
    assert {p["id"] for p in out["recommended"][:2]} == {"a", "b"}
    assert out["recommended"][0]["summary"].split(" (")[0] in ("Scream Night", "Ghost Manor")


def test_chat_recbot_thread_revises_and_never_repeats(home: Path, catalog_dir: Path) -> None:
    replies = [
        '{"type": "Movie", "genres": ["horror"]}',
        PLAN,
        "Scary.",
        '{"exclude_genres": ["horror"]}',
        PLAN,
        "Fun.",
    ]
    args = ["--agent", "recbot", "--catalog", str(catalog_dir), "--model", script(home, replies), "--thread", "r1"]
    result = invoke(chat, [*args, "--quiet"], "a horror movie\nno more horror\n/exit\n")
    assert result.exit_code == 0, result.output
    first, second = result.output.split("Scary.")[1].split("Fun.")
    assert "Scream Night" in first and "Ghost Manor" in first
    assert "Laugh Riot" in second and "Scream Night" not in second and "Ghost Manor" not in second
    with TrajectoryStore.open(home / "trajectories.db") as store:
        runs = store.runs()
    assert [(r.agent, r.meta["turn"]) for r in runs] == [("recbot", 0), ("recbot", 1)]


def test_catalog_is_a_recbot_option(home: Path, catalog_dir: Path) -> None:
    result = CliRunner().invoke(ask, ["--catalog", str(catalog_dir), "--model", script(home, []), "hi"])
    assert result.exit_code == 2 and "--catalog is a recbot option" in result.output
