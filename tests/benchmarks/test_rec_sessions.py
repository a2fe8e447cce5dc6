"""Session sampling over the real packaged catalog, session items, and the InteRecAgent request set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentdistill.benchmarks.suites.rec_sessions import (
    GROUPS,
    NETFLIX_SEED,
    NETFLIX_SESSIONS,
    NotEnoughSessions,
    load_requests,
    sample_sessions,
    session_item,
    session_of,
)
from agentdistill.errors import InputDataError
from agentdistill.memory.catalog import Catalog, CatalogQuery
from agentdistill.memory.embedders import HashingEmbedder


def test_sampling_is_deterministic_and_the_seed_matters(catalog: Catalog) -> None:
    first = sample_sessions(catalog, 12, seed=3)
    assert sample_sessions(catalog, 12, seed=3) == first
    other = sample_sessions(catalog, 12, seed=4)
    assert [s.target_id for s in other] != [s.target_id for s in first]
    assert len({s.target_id for s in first}) == 12 and len({s.id for s in first}) == 12


def test_the_same_items_in_another_catalog_give_the_same_sessions(catalog: Catalog, tmp_path: Path) -> None:
    items = catalog.filter(CatalogQuery())
    rebuilt = Catalog.build(tmp_path / "copy", list(reversed(items)), HashingEmbedder(32))
    assert sample_sessions(rebuilt, 10, seed=NETFLIX_SEED) == sample_sessions(catalog, 10, seed=NETFLIX_SEED)


def test_every_session_leaves_3_to_200_candidates_the_target_among_them(catalog: Catalog) -> None:
    sessions = sample_sessions(catalog, NETFLIX_SESSIONS, NETFLIX_SEED)
    assert len(sessions) == NETFLIX_SESSIONS
    for s in sessions:
        target = catalog.get(s.target_id)
        matching = catalog.filter(s.hidden)  # the SQL path agrees with the count taken in Python
        assert 3 <= s.candidates <= 200 and len(matching) == s.candidates, s
        assert target in matching and not s.hidden.violations(target)
        assert s.hidden.types == (target.type,) and 1 <= len(s.hidden.genres) <= 2
        assert set(s.hidden.genres) <= set(target.genres)
        assert s.hidden.year_min is not None or s.hidden.year_max is not None
        constrained = {g for g, fields in GROUPS.items() if any(getattr(s.hidden, f) not in ((), None) for f in fields)}
        assert sorted(s.reveal) == sorted(constrained) and len(set(s.reveal)) == len(s.reveal)
        assert re.fullmatch(rf"rec-\d{{3}}-{re.escape(s.target_id)}", s.id)
    # the optional groups do occur, so the users have more than type/genre/years to talk about
    assert {g for s in sessions for g in s.reveal} >= {"country", "length", "rating"}


def test_tight_bounds_are_respected_or_refused(catalog: Catalog, tmp_path: Path) -> None:
    narrow = sample_sessions(catalog, 5, seed=1, min_candidates=3, max_candidates=10)
    assert all(3 <= s.candidates <= 10 for s in narrow)
    small = Catalog.build(tmp_path / "small", catalog.filter(CatalogQuery(), limit=40), HashingEmbedder(16))
    with pytest.raises(NotEnoughSessions, match=r"only \d+ of 50 sessions could be sampled from a catalog of 40"):
        sample_sessions(small, 50, seed=1)


def test_a_session_round_trips_through_its_item(catalog: Catalog) -> None:
    [session] = sample_sessions(catalog, 1, seed=5)
    item = session_item(session, catalog)
    assert item.id == session.id and item.answers == (session.target_id,)
    assert item.meta["type"] == catalog.get(session.target_id).type
    assert json.loads(json.dumps(dict(item.meta))) == dict(item.meta)  # results lines carry it as JSON
    assert session_of(item) == session


def _requests(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_requests_become_movie_requests_filled_from_the_catalog(catalog: Catalog, tmp_path: Path) -> None:
    rows = [
        {"id": "g1", "request": "I played GAME1 and GAME2, please suggest TYPE games to play next.", "domain": "games"},
        {"id": "m1", "request": "TYPE1 movies sound interesting, recommend one like MOVIE.", "domain": "movies"},
        {"id": "b1", "request": "Products like PRODUCT1 with price lower than PRICE?", "domain": "beauty"},
    ]
    path = _requests(tmp_path / "req.jsonl", rows)
    items = load_requests(path, catalog)
    assert load_requests(path, catalog) == items  # filled the same way every time
    g1, m1, b1 = items
    for item in items:
        assert not re.search(r"\b(GAME|MOVIE|PRODUCT|TYPE|PRICE)\d?\b", item.question), item.question
        assert item.meta["request"] == item.question and item.answers == ()
    assert "watched" in g1.question and "movies to watch next" in g1.question and "game" not in g1.question.lower()
    titles = g1.meta["filled_titles"]
    assert len(titles) == 2 and all(t in g1.question for t in titles)
    hidden = CatalogQuery(**g1.meta["hidden"])
    assert len(hidden.genres) == 1 and len(hidden.exclude_ids) == 2  # the named genre; the named titles not again
    assert all(catalog.get(i).title in titles for i in hidden.exclude_ids)
    assert m1.meta["original"] == rows[1]["request"] and m1.meta["domain"] == "movies"
    assert "Movies like" in b1.question and "under 100 minutes" in b1.question


def test_a_bad_request_line_names_file_and_line(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "req.jsonl"
    path.write_text('{"id": "a", "request": "hi"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"req.jsonl:2: field 'request'"):
        load_requests(path, catalog)


def test_the_shared_request_file_loads_whole(catalog: Catalog, shared_data: Path) -> None:
    items = load_requests(shared_data / "recommendation/interecagent_requests_shared.jsonl", catalog)
    assert len(items) == 340 and len({i.id for i in items}) == 340
    assert not any(re.search(r"\b(GAME|MOVIE|PRODUCT|TYPE)\d?\b", i.question) for i in items)
    assert {i.meta["domain"] for i in items} == {"games", "movies", "beauty"}
