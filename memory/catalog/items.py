"""What a catalog holds and how it is asked: `CatalogItem`, `CatalogQuery` (with a pure-Python predicate) and
`Vocabulary`.

The predicate (`CatalogQuery.check`) is the definition of what a query means; the SQL the catalog runs
(db.py) must agree with it item for item, and the tests hold it to that. String values compare
case-insensitively after collapsing whitespace (`key()`), ids compare exactly. Import these names from
`agentdistill.memory.catalog`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentdistill.errors import AgentDistillError

MOVIE, SHOW = "Movie", "TV Show"


class InvalidCatalogValue(AgentDistillError):
    """A CatalogItem or CatalogQuery field has a value of the wrong kind."""

    def __init__(self, owner: str, field: str, value: object, expected: str) -> None:
        super().__init__(f"{owner} field {field!r} is {value!r}: expected {expected}.")
        self.field, self.value = field, value


def key(text: str) -> str:
    """The form strings are compared in, in Python and (stored precomputed) in SQL: 'Tom  Hanks' == 'tom hanks'."""
    return " ".join(text.split()).casefold()


def _as_strings(owner: str, name: str, value: object) -> tuple[str, ...]:
    """Lists and tuples become tuples (callers build queries from JSON); a lone string is one value, not letters."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise InvalidCatalogValue(owner, name, value, "a list of strings")
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise InvalidCatalogValue(owner, name, value, "a list of strings")
    return tuple(v.strip() for v in items if v.strip())


def _check_int(owner: str, name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidCatalogValue(owner, name, value, "an integer" + (" or None" if optional else ""))


@dataclass(frozen=True)
class CatalogItem:
    """One title. Lists are tuples so items hash and compare; `summary()` is the one line prompts show."""

    id: str  # unique within its catalog, e.g. Netflix show_id "s1234"
    type: str  # "Movie" | "TV Show" (imports may use other kinds)
    title: str
    director: tuple[str, ...]
    cast: tuple[str, ...]
    countries: tuple[str, ...]  # production countries, in the order the source lists them
    release_year: int
    rating: str  # maturity rating: "PG-13", "TV-MA"; "" if unknown
    duration_min: int | None  # runtime in minutes for movies; None for shows
    seasons: int | None  # number of seasons for shows; None for movies
    genres: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        for name in ("id", "type", "title", "rating", "description"):
            if not isinstance(getattr(self, name), str):
                raise InvalidCatalogValue("CatalogItem", name, getattr(self, name), "a string")
        if not self.id or not self.title.strip():
            raise InvalidCatalogValue("CatalogItem", "id" if not self.id else "title", "", "a non-empty string")
        for name in ("director", "cast", "countries", "genres"):
            object.__setattr__(self, name, _as_strings("CatalogItem", name, getattr(self, name)))
        _check_int("CatalogItem", "release_year", self.release_year, optional=False)
        _check_int("CatalogItem", "duration_min", self.duration_min, optional=True)
        _check_int("CatalogItem", "seasons", self.seasons, optional=True)

    @property
    def people(self) -> tuple[str, ...]:
        """Directors then cast: who `people` / `exclude_people` constraints look at."""
        return self.director + self.cast

    def summary(self) -> str:
        """'Title (Movie, 2019, 94 min, Dramas/Comedies, PG-13)'; unknown parts are left out."""
        parts = [self.type, str(self.release_year)]
        if self.duration_min is not None:
            parts.append(f"{self.duration_min} min")
        if self.seasons is not None:
            parts.append(f"{self.seasons} season" + ("s" if self.seasons != 1 else ""))
        if self.genres:
            parts.append("/".join(self.genres))
        if self.rating:
            parts.append(self.rating)
        return f"{self.title} ({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `from_dict` reads it back (the packaged catalog and the catalog database store this form)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in _ITEM_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogItem:
        missing = [f.name for f in _ITEM_FIELDS if f.name not in data]
        if missing:
            raise InvalidCatalogValue("CatalogItem", missing[0], None, "a value (the field is missing)")
        return cls(**{f.name: data[f.name] for f in _ITEM_FIELDS})


_ITEM_FIELDS = dataclasses.fields(CatalogItem)


@dataclass(frozen=True)
class FieldCheck:
    """One constrained field against one item: `detail` reads as '<what the item has> (wanted <what was asked>)'."""

    field: str  # a CatalogQuery field name
    ok: bool
    detail: str  # "" when the constraint does not apply to this kind of item (a runtime bound on a show)


@dataclass(frozen=True)
class CatalogQuery:
    """Structured constraints; an empty field is no constraint. Lists mean any-of; `exclude_*` mean none-of.

    Genres, countries, ratings, types and people compare case-insensitively; use the catalog's vocabulary
    names ("Horror Movies", not "horror"). Runtime bounds constrain movies only and `seasons_max` shows only:
    an item without that attribute passes them.
    """

    types: tuple[str, ...] = ()  # any of: "Movie", "TV Show"
    genres: tuple[str, ...] = ()  # any of these genres
    exclude_genres: tuple[str, ...] = ()  # none of these genres
    year_min: int | None = None  # released in or after this year
    year_max: int | None = None  # released in or before this year
    duration_min: int | None = None  # movies: at least this many minutes
    duration_max: int | None = None  # movies: at most this many minutes
    seasons_max: int | None = None  # shows: at most this many seasons
    countries: tuple[str, ...] = ()  # any of these production countries
    exclude_countries: tuple[str, ...] = ()
    ratings: tuple[str, ...] = ()  # any of these maturity ratings
    exclude_ratings: tuple[str, ...] = ()
    people: tuple[str, ...] = ()  # any of these in cast or director
    exclude_people: tuple[str, ...] = ()
    exclude_ids: tuple[str, ...] = ()  # never these items (already shown, rejected); exact ids

    def __post_init__(self) -> None:
        for name in LIST_FIELDS:
            object.__setattr__(self, name, _as_strings("CatalogQuery", name, getattr(self, name)))
        for name in NUMBER_FIELDS:
            _check_int("CatalogQuery", name, getattr(self, name), optional=True)

    def is_empty(self) -> bool:
        return not self.constrained_fields()

    def constrained_fields(self) -> list[str]:
        """Names of the fields that constrain anything, in declaration order."""
        return [f for f in QUERY_FIELDS if getattr(self, f) not in ((), None)]

    def check(self, item: CatalogItem) -> list[FieldCheck]:
        """Every constrained field against `item`: what it meets and what it misses (explain and rank use this)."""
        return [_CHECKS[name](getattr(self, name), item, name) for name in self.constrained_fields()]

    def violations(self, item: CatalogItem) -> list[str]:
        """'<field>: <detail>' for each constraint `item` breaks; empty when it satisfies the query."""
        return [f"{c.field}: {c.detail}" for c in self.check(item) if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """Only the constrained fields, lists as lists: JSON-able, and `CatalogQuery(**d)` reads it back."""
        return {f: list(v) if isinstance(v := getattr(self, f), tuple) else v for f in self.constrained_fields()}

    def without(self, *fields: str) -> CatalogQuery:
        """The same query with `fields` cleared (relaxing a constraint)."""
        unknown = [f for f in fields if f not in QUERY_FIELDS]
        if unknown:
            raise InvalidCatalogValue("CatalogQuery", unknown[0], None, f"one of {', '.join(QUERY_FIELDS)}")
        return dataclasses.replace(self, **{f: None if f in NUMBER_FIELDS else () for f in fields})


QUERY_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CatalogQuery))
NUMBER_FIELDS = ("year_min", "year_max", "duration_min", "duration_max", "seasons_max")
LIST_FIELDS: tuple[str, ...] = tuple(f for f in QUERY_FIELDS if f not in NUMBER_FIELDS)


@dataclass(frozen=True)
class Vocabulary:
    """The values a catalog actually has, sorted: what a parser maps free text onto."""

    types: tuple[str, ...]
    genres: tuple[str, ...]
    countries: tuple[str, ...]
    ratings: tuple[str, ...]  # without "" (unknown)

    def to_dict(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


# ---- the predicate, one small function per field ---------------------------------------------------------------


def _any_of(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else "any of " + ", ".join(values)


def _none_of(values: tuple[str, ...]) -> str:
    return "not " + values[0] if len(values) == 1 else "none of " + ", ".join(values)


def _listing(values: tuple[str, ...], empty: str = "none") -> str:
    return ", ".join(values) if values else empty


def _members(
    have: tuple[str, ...], want: tuple[str, ...], *, exclude: bool, field: str, label: str, limit: int = 0
) -> FieldCheck:
    wanted = {key(v) for v in want}
    hits = tuple(v for v in have if key(v) in wanted)
    shown = hits if hits else (have[:limit] if limit else have)
    detail = f"{label} {_listing(shown)}" + (" ..." if limit and not hits and len(have) > limit else "")
    wish = _none_of(want) if exclude else _any_of(want)
    return FieldCheck(field, bool(hits) != exclude, f"{detail} (wanted {wish})")


def _types(want: tuple[str, ...], item: CatalogItem, field: str) -> FieldCheck:
    ok = key(item.type) in {key(v) for v in want}
    return FieldCheck(field, ok, f"a {item.type} (wanted {' or '.join(want)})")


def _genres(want: tuple[str, ...], item: CatalogItem, field: str) -> FieldCheck:
    return _members(item.genres, want, exclude=field.startswith("exclude"), field=field, label="genres")


def _countries(want: tuple[str, ...], item: CatalogItem, field: str) -> FieldCheck:
    return _members(item.countries, want, exclude=field.startswith("exclude"), field=field, label="from")


def _people(want: tuple[str, ...], item: CatalogItem, field: str) -> FieldCheck:
    return _members(item.people, want, exclude=field.startswith("exclude"), field=field, label="with", limit=3)


def _ratings(want: tuple[str, ...], item: CatalogItem, field: str) -> FieldCheck:
    exclude = field.startswith("exclude")
    ok = (key(item.rating) in {key(v) for v in want}) != exclude
    have = f"rated {item.rating}" if item.rating else "unrated"
    return FieldCheck(field, ok, f"{have} (wanted {_none_of(want) if exclude else _any_of(want)})")


def _exclude_ids(want: tuple[str, ...], item: CatalogItem, field: str) -> FieldCheck:
    ok = item.id not in set(want)
    return FieldCheck(field, ok, f"id {item.id} ({'not excluded' if ok else 'excluded: already shown or rejected'})")


def _year(bound: int, item: CatalogItem, field: str) -> FieldCheck:
    low = field == "year_min"
    ok = item.release_year >= bound if low else item.release_year <= bound
    return FieldCheck(field, ok, f"released {item.release_year} (wanted {bound} or {'later' if low else 'earlier'})")


def _duration(bound: int, item: CatalogItem, field: str) -> FieldCheck:
    if item.duration_min is None:
        return FieldCheck(field, True, "")
    low = field == "duration_min"
    ok = item.duration_min >= bound if low else item.duration_min <= bound
    return FieldCheck(field, ok, f"{item.duration_min} min (wanted at {'least' if low else 'most'} {bound} min)")


def _seasons(bound: int, item: CatalogItem, field: str) -> FieldCheck:
    if item.seasons is None:
        return FieldCheck(field, True, "")
    plural = "s" if item.seasons != 1 else ""
    return FieldCheck(field, item.seasons <= bound, f"{item.seasons} season{plural} (wanted at most {bound})")


_CHECKS: Mapping[str, Any] = {
    "types": _types,
    "genres": _genres,
    "exclude_genres": _genres,
    "year_min": _year,
    "year_max": _year,
    "duration_min": _duration,
    "duration_max": _duration,
    "seasons_max": _seasons,
    "countries": _countries,
    "exclude_countries": _countries,
    "ratings": _ratings,
    "exclude_ratings": _ratings,
    "people": _people,
    "exclude_people": _people,
    "exclude_ids": _exclude_ids,
}
