"""Simulated recommendation sessions over a catalog, and the real InteRecAgent requests, as benchmark items.

A session hides one target title behind constraints derived from it (its type, one or two of its genres, a
year range around it, maybe its country, length or rating), chosen so that 3..200 catalog titles meet them:
few enough that a good recommender can narrow down to the target over a few turns, many enough that the
first turn cannot simply list them all. Sampling is a pure function of the catalog's items and the seed, so
`rec-netflix` is the same 40 sessions on every machine and a `--resume` finds its items again.

The request set turns the 340 InteRecAgent requests (games, beauty products and movies, with placeholders
such as TYPE and MOVIE1) into movie requests over our catalog: domain words are swapped and placeholders
filled from the catalog, deterministically per request, keeping the original wording otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agentdistill.benchmarks.items import Item
from agentdistill.errors import AgentDistillError, InputDataError
from agentdistill.jsonl import json_objects
from agentdistill.memory.catalog import Catalog, CatalogItem, CatalogQuery

NETFLIX_SESSIONS = 40  # sessions in `rec-netflix`: 30 for the reported run plus a few spare for --seed shuffles
NETFLIX_SEED = 8  # fixed: the suite's sessions never change unless the packaged catalog does
MIN_CANDIDATES, MAX_CANDIDATES = 3, 200

# Constraint groups a user states as one wish; each names the CatalogQuery fields it sets.
GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "type": ("types",),
        "genres": ("genres",),
        "years": ("year_min", "year_max"),
        "country": ("countries",),
        "length": ("duration_min", "duration_max", "seasons_max"),
        "rating": ("ratings",),
    }
)
# Genres that say little about a title ("International Movies" holds a third of the catalog): a session
# hides one of them only when the target has nothing more specific.
BROAD_GENRES = frozenset({"International Movies", "International TV Shows", "Movies", "TV Shows", "Independent Movies"})
_RATING = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")
_UNRATED = frozenset({"NR", "UR"})  # "not rated" is no one's wish


class NotEnoughSessions(AgentDistillError):
    def __init__(self, wanted: int, made: int, size: int) -> None:
        super().__init__(
            f"only {made} of {wanted} sessions could be sampled from a catalog of {size} titles (each needs "
            f"{MIN_CANDIDATES}..{MAX_CANDIDATES} titles meeting its hidden constraints): use a larger catalog "
            "or ask for fewer sessions."
        )


@dataclass(frozen=True)
class RecSession:
    """One simulated user's secret: the title they would accept and the constraints that lead to it."""

    id: str  # stable item id: rec-<index>-<target id>
    target_id: str  # catalog id of the title the user is after
    hidden: CatalogQuery  # everything the user wants; the target always meets it
    reveal: tuple[str, ...]  # GROUPS keys in the order the user brings them up
    candidates: int = 0  # catalog titles meeting `hidden` (the target included)

    def group_query(self, group: str) -> CatalogQuery:
        """The hidden constraints of one group alone, e.g. only the year range."""
        return restrict(self.hidden, GROUPS[group])


def restrict(query: CatalogQuery, fields: Sequence[str]) -> CatalogQuery:
    """`query` keeping only `fields` (the others back at their "no constraint" defaults)."""
    defaults = CatalogQuery()
    return dataclasses.replace(
        defaults, **{f.name: getattr(query, f.name) for f in dataclasses.fields(query) if f.name in fields}
    )


def sample_sessions(
    catalog: Catalog,
    n: int,
    seed: int,
    *,
    min_candidates: int = MIN_CANDIDATES,
    max_candidates: int = MAX_CANDIDATES,
) -> list[RecSession]:
    """`n` sessions with distinct targets, each leaving min..max candidates; the same catalog and seed give the same."""
    items = sorted(catalog.filter(CatalogQuery()), key=lambda i: i.id)
    span = (min(i.release_year for i in items), max(i.release_year for i in items)) if items else (0, 0)
    rng = random.Random(seed)
    order = list(items)
    rng.shuffle(order)
    sessions: list[RecSession] = []
    for target in order:
        if len(sessions) == n:
            break
        session = _session_for(target, items, rng, len(sessions), (min_candidates, max_candidates), span)
        if session is not None:
            sessions.append(session)
    if len(sessions) < n:
        raise NotEnoughSessions(n, len(sessions), len(items))
    return sessions


def _session_for(
    target: CatalogItem,
    items: Sequence[CatalogItem],
    rng: random.Random,
    index: int,
    bounds: tuple[int, int],
    span: tuple[int, int],
) -> RecSession | None:
    """Hidden constraints around `target` with bounds[0]..bounds[1] candidates, or None when it cannot have them.

    `span` is the catalog's (first, last) release year.
    """
    lo, hi = bounds
    genres = [g for g in target.genres if g not in BROAD_GENRES] or list(target.genres)
    if not genres or not target.release_year:
        return None
    chosen = rng.sample(genres, k=min(len(genres), rng.choice((1, 1, 2))))
    fields: dict[str, Any] = {"types": (target.type,), "genres": tuple(chosen), **_year_window(target, rng, span)}
    extras = _extras(target, rng)
    rng.shuffle(extras)
    for group, values in list(extras):
        if rng.random() < 0.3:
            fields.update(values)
            extras.remove((group, values))
    count = _count(fields, items)
    while count > hi and extras:  # too many titles to narrow down: add what else the target has
        fields.update(extras.pop()[1])
        count = _count(fields, items)
    if count > hi:
        fields.update(year_min=target.release_year - 1, year_max=target.release_year + 1)
        count = _count(fields, items)
    if not lo <= count <= hi:
        return None
    hidden = CatalogQuery(**fields)
    if hidden.violations(target):  # our bug: the target must meet its own constraints
        raise AssertionError(f"session target {target.id} violates its hidden constraints: {hidden.violations(target)}")
    groups = [g for g, names in GROUPS.items() if any(n in fields for n in names)]
    rng.shuffle(groups)
    return RecSession(f"rec-{index:03d}-{target.id}", target.id, hidden, tuple(groups), count)


def _year_window(target: CatalogItem, rng: random.Random, span: tuple[int, int]) -> dict[str, int]:
    """A year range around the target's year, leaving out a bound at or past the catalog's own range (a no-op)."""
    year, (first, last) = target.release_year, span
    shape = rng.random()
    if shape < 0.15:
        window = {"year_min": year - rng.randint(0, 5)}
    elif shape < 0.3:
        window = {"year_max": year + rng.randint(0, 5)}
    else:
        width = rng.choice((4, 6, 8, 10, 15))
        low = year - rng.randint(0, width)
        window = {"year_min": low, "year_max": low + width}
    window = {k: v for k, v in window.items() if (k == "year_min" and v > first) or (k == "year_max" and v < last)}
    return window or ({"year_min": year} if year > first else {"year_max": year})


def _extras(target: CatalogItem, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """The optional constraint groups this target can carry: its country, its length, its rating."""
    out: list[tuple[str, dict[str, Any]]] = []
    if target.countries:
        out.append(("country", {"countries": (target.countries[0],)}))
    if target.duration_min:
        if rng.random() < 0.75:
            out.append(("length", {"duration_max": (target.duration_min // 10 + 1 + rng.randint(0, 2)) * 10}))
        else:
            out.append(("length", {"duration_min": max(10, (target.duration_min // 10 - rng.randint(0, 2)) * 10)}))
    elif target.seasons:
        out.append(("length", {"seasons_max": target.seasons + rng.randint(0, 1)}))
    if target.rating and _RATING.fullmatch(target.rating) and target.rating not in _UNRATED:
        out.append(("rating", {"ratings": (target.rating,)}))
    return out


def _count(fields: Mapping[str, Any], items: Sequence[CatalogItem]) -> int:
    query = CatalogQuery(**fields)
    return sum(1 for item in items if not query.violations(item))


def session_item(session: RecSession, catalog: Catalog) -> Item:
    """A session as a runner item: the target is the gold answer, the secret travels in `meta`."""
    target = catalog.get(session.target_id)
    meta = {
        "type": target.type,  # reports break hit rates down by it
        "target_title": target.title,
        "hidden": session.hidden.to_dict(),
        "reveal": list(session.reveal),
        "candidates": session.candidates,
    }
    question = f"simulated session: find {target.summary()} within {json.dumps(meta['hidden'])}"
    return Item(session.id, question, (session.target_id,), meta=meta)


def session_of(item: Item) -> RecSession:
    """The session an item made by `session_item` carries."""
    meta = item.meta
    return RecSession(
        item.id, item.answers[0], CatalogQuery(**meta["hidden"]), tuple(meta["reveal"]), int(meta["candidates"])
    )


def session_items(catalog: Catalog, *, n: int = NETFLIX_SESSIONS, seed: int = NETFLIX_SEED) -> list[Item]:
    return [session_item(s, catalog) for s in sample_sessions(catalog, n, seed)]


# -- the InteRecAgent requests -------------------------------------------------------------------------------

# Genres that read well where a request says "TYPE movies", with the word used there.
GENRE_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "Horror Movies": "horror",
        "Comedies": "comedy",
        "Dramas": "drama",
        "Action & Adventure": "action",
        "Documentaries": "documentary",
        "Romantic Movies": "romantic",
        "Sci-Fi & Fantasy": "sci-fi",
        "Thrillers": "thriller",
        "Sports Movies": "sports",
        "Children & Family Movies": "family",
        "Classic Movies": "classic",
        "Music & Musicals": "musical",
    }
)
# The requests' own domain words, as a movie watcher would say them.
_DOMAIN_WORDS = (
    ("games", "movies"),
    ("game", "movie"),
    ("gaming", "watching"),
    ("playing", "watching"),
    ("played", "watched"),
    ("play", "watch"),
    ("products", "movies"),
    ("product", "movie"),
    ("bought", "watched"),
    ("buy", "watch"),
)
_TITLE_SLOT = re.compile(r"\b(?:MOVIE|GAME|PRODUCT)(\d?)\b")
_GENRE_SLOT = re.compile(r"\bTYPE(\d?)\b")
_PRICE_SLOT = re.compile(r"\bprice lower than PRICE\b|\bPRICE\b")


def load_requests(path: Path, catalog: Catalog, *, seed: int = 0, limit: int | None = None) -> list[Item]:
    """The InteRecAgent request file as single-turn movie requests over `catalog` (every line validated first).

    An item's meta keeps the original request and domain, the titles and genres filled in, and `hidden`: the
    constraints the filled-in request states (its genres; its named titles are not to be recommended back).
    """
    rows = _read_requests(Path(path))
    items = sorted(catalog.filter(CatalogQuery(types=("Movie",))), key=lambda i: i.id)
    genres = [g for g in GENRE_WORDS if g in set(catalog.vocabulary().genres)]
    out = []
    for row in rows[:limit] if limit is not None else rows:
        out.append(_request_item(row, items, genres, seed))
    return out


def _read_requests(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, row in json_objects(path):
        for key in ("id", "request"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise InputDataError(path, number, "is missing or not a non-empty string", field=key)
        rows.append(row)
    return rows


def _request_item(row: Mapping[str, Any], movies: Sequence[CatalogItem], genres: Sequence[str], seed: int) -> Item:
    rng = random.Random(f"{seed}:{row['id']}")  # per request, so one edit to the file moves nothing else
    text = row["request"]
    for theirs, ours in _DOMAIN_WORDS:  # lower and Capitalised only: GAME1 is a placeholder, filled below
        text = re.sub(rf"\b{theirs}\b", ours, text)
        text = re.sub(rf"\b{theirs.capitalize()}\b", ours.capitalize(), text)
    titles: dict[str, CatalogItem] = {}
    named_genres: dict[str, str] = {}

    def title(match: re.Match[str]) -> str:
        key = match.group(1) or "0"
        if key not in titles:
            titles[key] = rng.choice([m for m in movies if m not in titles.values()])
        return titles[key].title

    def genre(match: re.Match[str]) -> str:
        key = match.group(1) or "0"
        if key not in named_genres:
            named_genres[key] = rng.choice([g for g in genres if g not in named_genres.values()])
        return GENRE_WORDS[named_genres[key]]

    text = _TITLE_SLOT.sub(title, text)
    text = _GENRE_SLOT.sub(genre, text) if genres else text
    text = _PRICE_SLOT.sub("a running time under 100 minutes", text)
    hidden = CatalogQuery(genres=tuple(named_genres.values()), exclude_ids=tuple(t.id for t in titles.values()))
    meta = {
        "request": text,
        "original": row["request"],
        "domain": row.get("domain", ""),
        "filled_titles": [t.title for t in titles.values()],
        "hidden": hidden.to_dict(),
    }
    return Item(str(row["id"]), text, (), meta=meta)
