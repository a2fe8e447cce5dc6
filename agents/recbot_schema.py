"""recbot's structured preference, and how model text becomes one.

The parser model rewrites the whole preference each turn; this module keeps that honest. Parsing is tolerant
about where the JSON sits (fenced, bare, followed by chatter) and about the shapes small models write (a
string for a list, "movie" for "Movie", "horror" for "Horror Movies"), but strict about what it accepts:
values the catalog does not know are dropped with a notice, never passed on as filters that match nothing.
`revise` turns "no more horror" into a revision of the earlier wish instead of a contradiction.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentdistill.agents.common import json_values
from agentdistill.errors import AgentDistillError
from agentdistill.memory.catalog import CatalogQuery, Vocabulary

LIST_FIELDS = (
    "genres",
    "exclude_genres",
    "countries",
    "exclude_countries",
    "ratings",
    "exclude_ratings",
    "people",
    "exclude_people",
)
NUMBER_FIELDS = ("year_min", "year_max", "duration_min", "duration_max", "seasons_max")
CONSTRAINT_FIELDS = ("type", *LIST_FIELDS, *NUMBER_FIELDS)  # the fields that become catalog filters
DEFAULT_HARD = ("type", "exclude_genres", "exclude_countries", "exclude_ratings", "exclude_people")
# (wanted, excluded) pairs: a value may sit in one of them, and a new wish moves it across
PAIRS = (("genres", "exclude_genres"), ("countries", "exclude_countries"), ("ratings", "exclude_ratings"))
PAIRS += (("people", "exclude_people"),)
RANGES = (("year_min", "year_max"), ("duration_min", "duration_max"))  # lower bound must not exceed upper

_NONE_WORDS = {"", "none", "null", "any", "n/a", "unknown", "no preference"}
_TYPE_WORDS = {
    "movie": "Movie",
    "movies": "Movie",
    "film": "Movie",
    "films": "Movie",
    "tv show": "TV Show",
    "tv shows": "TV Show",
    "tv": "TV Show",
    "show": "TV Show",
    "shows": "TV Show",
    "series": "TV Show",
    "tv series": "TV Show",
}
# words that say what kind of title a genre is for, not what it is about: "horror" should find "Horror Movies"
_GENRE_FILLER = {"movie", "movies", "film", "films", "tv", "show", "shows", "series", "and", "&", "feature"}
# whole-phrase spellings people use for catalog names (applied before word matching)
_PHRASES = {
    "science fiction": "sci-fi",
    "stand up": "stand-up",
    "usa": "united states",
    "us": "united states",
    "america": "united states",
    "american": "united states",
    "uk": "united kingdom",
    "britain": "united kingdom",
    "british": "united kingdom",
    "england": "united kingdom",
    "korean": "south korea",
    "korea": "south korea",
    "indian": "india",
    "japanese": "japan",
    "french": "france",
    "spanish": "spain",
    "german": "germany",
    "mexican": "mexico",
    "chinese": "china",
    "canadian": "canada",
    "australian": "australia",
    "italian": "italy",
    "turkish": "turkey",
    "egyptian": "egypt",
    "nigerian": "nigeria",
    "brazilian": "brazil",
}
# single words mapped onto the word the catalog uses, after stemming
_WORDS = {
    "romance": "romantic",
    "scifi": "sci-fi",
    "kid": "children",
    "child": "children",
    "standup": "stand-up",
    "doc": "documentary",
    "mystery": "mystery",
    "musical": "music",
    "animation": "anime",
    "animated": "anime",
    "cartoon": "anime",
}


class PreferenceParseError(AgentDistillError):
    """The parser's text holds no usable preference; the message is written for the model, which may retry."""


class Preference(BaseModel):
    """What the user wants, as constraints the catalog can check; `hard` ones filter, the rest only rank."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["Movie", "TV Show"] | None = None  # None: either
    genres: list[str] = Field(default_factory=list)  # any of these, exact vocabulary names
    exclude_genres: list[str] = Field(default_factory=list)
    year_min: int | None = Field(default=None, ge=1900, le=2100)  # release year bounds, inclusive
    year_max: int | None = Field(default=None, ge=1900, le=2100)
    duration_min: int | None = Field(default=None, ge=1, le=1000)  # minutes; movies only
    duration_max: int | None = Field(default=None, ge=1, le=1000)
    seasons_max: int | None = Field(default=None, ge=1, le=100)  # shows only
    countries: list[str] = Field(default_factory=list)  # any of these production countries
    exclude_countries: list[str] = Field(default_factory=list)
    ratings: list[str] = Field(default_factory=list)  # any of these maturity ratings ("PG-13", "TV-MA")
    exclude_ratings: list[str] = Field(default_factory=list)
    people: list[str] = Field(default_factory=list)  # cast or director names
    exclude_people: list[str] = Field(default_factory=list)
    similar_to: list[str] = Field(default_factory=list)  # titles: "something like X"
    vibe: str = ""  # free text for semantic retrieval ("cosy", "mind-bending heist")
    hard: list[str] = Field(default_factory=lambda: list(DEFAULT_HARD))  # constraint fields that filter

    @model_validator(mode="before")
    @classmethod
    def _tolerate(cls, raw: Any) -> Any:
        """Accept the shapes small models write: "movie", a bare string for a list, "" or "any" for nothing."""
        if not isinstance(raw, Mapping):
            return raw
        data = dict(raw)
        if isinstance(data.get("type"), str):
            word = data["type"].strip().lower()
            data["type"] = None if word in _NONE_WORDS else _TYPE_WORDS.get(word, data["type"])
        for name in (*LIST_FIELDS, "similar_to", "hard"):
            value = data.get(name)
            if value is None:
                data.pop(name, None)
            elif isinstance(value, str):
                data[name] = [] if value.strip().lower() in _NONE_WORDS else [value]
        for name in NUMBER_FIELDS:
            value = data.get(name)
            if isinstance(value, str) and value.strip().lower() in _NONE_WORDS or value == 0:
                data[name] = None
            elif isinstance(value, str) and (year := re.fullmatch(r"\s*(\d{2,4})(?:s|'s| min| minutes)?\s*", value)):
                data[name] = int(year.group(1))  # "1990s", "90 min"
        if data.get("vibe") is None:
            data.pop("vibe", None)
        return data

    @field_validator(*LIST_FIELDS, "similar_to")
    @classmethod
    def _clean_list(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values if v.strip()]
        return list({v.lower(): v for v in reversed(cleaned)}.values())[::-1]  # dedupe, first spelling wins

    @field_validator("hard")
    @classmethod
    def _known_fields(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in CONSTRAINT_FIELDS]
        if unknown:
            raise ValueError(f"hard names unknown fields {unknown}; use some of {list(CONSTRAINT_FIELDS)}")
        return list(dict.fromkeys(values))

    def hard_query(self) -> CatalogQuery:
        """The constraints every recommendation must meet."""
        return self._query(set(self.hard))

    def soft_query(self) -> CatalogQuery:
        """The wishes that only rank: an item may miss them if nothing better exists."""
        return self._query(set(CONSTRAINT_FIELDS) - set(self.hard))

    def full_query(self) -> CatalogQuery:
        """Every constraint, hard or soft: what the user asked for, for explanations and parse accuracy."""
        return self._query(set(CONSTRAINT_FIELDS))

    def _query(self, fields: set[str]) -> CatalogQuery:
        values: dict[str, Any] = {}
        if "type" in fields and self.type is not None:
            values["types"] = (self.type,)
        for name in LIST_FIELDS:
            if name in fields and getattr(self, name):
                values[name] = tuple(getattr(self, name))
        for name in NUMBER_FIELDS:
            if name in fields and getattr(self, name) is not None:
                values[name] = getattr(self, name)
        return CatalogQuery(**values)

    def conflicts(self) -> list[str]:
        """Contradictions the user must resolve; recommending anything for them would be a guess."""
        found = []
        for wanted, excluded in PAIRS:
            blocked = {v.lower() for v in getattr(self, excluded)}
            label = wanted.rstrip("s") if wanted != "people" else "person"
            found += [
                f"{label} {v!r} is both wanted and excluded" for v in getattr(self, wanted) if v.lower() in blocked
            ]
        for low, high in RANGES:
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                found.append(f"{low} {lo} > {high} {hi}")
        if self.type == "Movie" and self.seasons_max is not None:
            found.append(f"type 'Movie' but seasons_max {self.seasons_max} (only shows have seasons)")
        return found

    def describe(self) -> str:
        """The non-empty fields, compactly, for prompts and clarification questions."""
        shown = self.model_dump(exclude_defaults=True)
        shown.pop("hard", None)
        return json.dumps(shown, ensure_ascii=False) if shown else "{}"


def revise(previous: Preference, parsed: Preference) -> tuple[Preference, list[str]]:
    """Let this turn's wishes override earlier ones; only contradictions within this turn stay conflicts.

    A value newly excluded leaves the wanted list ("no more horror"), a value newly wanted leaves the
    excluded list, and a newly set bound drops an old opposite bound it contradicts ("older ones").
    """
    data = parsed.model_dump()
    notices: list[str] = []
    for wanted, excluded in PAIRS:
        new_wanted = _lowered(parsed, wanted) - _lowered(previous, wanted)
        new_excluded = _lowered(parsed, excluded) - _lowered(previous, excluded)
        for keep, drop, fresh, clash in (
            (wanted, excluded, new_wanted, new_excluded),
            (excluded, wanted, new_excluded, new_wanted),
        ):
            moved = [v for v in data[drop] if v.lower() in fresh - clash]
            if moved:
                data[drop] = [v for v in data[drop] if v not in moved]
                notices.append(f"revised: {', '.join(moved)} moved from {drop} to {keep}")
    for low, high in RANGES:
        lo, hi = data[low], data[high]
        if lo is None or hi is None or lo <= hi:
            continue
        changed_lo, changed_hi = lo != getattr(previous, low), hi != getattr(previous, high)
        if changed_hi and not changed_lo:
            data[low] = None
            notices.append(f"revised: dropped {low} {lo}, which contradicts the new {high} {hi}")
        elif changed_lo and not changed_hi:
            data[high] = None
            notices.append(f"revised: dropped {high} {hi}, which contradicts the new {low} {lo}")
    if data["type"] == "Movie" and data["seasons_max"] is not None and previous.type != "Movie":
        data["seasons_max"] = None
        notices.append("revised: dropped seasons_max, since you now want movies")
    return Preference.model_validate(data), notices


def parse_preference(text: str, previous: Preference, vocabulary: Vocabulary) -> tuple[Preference, list[str]]:
    """The updated preference in the parser's `text`, mapped onto the catalog's vocabulary and revised.

    Keys the model leaves out keep their previous values (small models forget fields); keys it writes,
    even as empty, replace them. Raises PreferenceParseError when there is no usable JSON object.
    """
    raw = first_json_object(text)
    notices: list[str] = []
    unknown = sorted(k for k in raw if k not in Preference.model_fields)
    if unknown:
        notices.append(f"ignored unknown attributes: {', '.join(unknown)}")
    data = previous.model_dump()
    data.update({k: v for k, v in raw.items() if k in Preference.model_fields})
    data, more = _map_vocabulary(data, vocabulary)
    notices += more
    try:
        parsed = Preference.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'preference'}: {e['msg']}" for e in exc.errors())
        raise PreferenceParseError(f"the preference JSON is invalid ({problems}); fix those fields") from exc
    revised, more = revise(previous, parsed)
    return revised, notices + more


def first_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text`, inside a code fence or bare; text after it is ignored."""
    value = next((v for v in json_values(text) if isinstance(v, dict)), None)
    if value is not None:
        return value
    raise PreferenceParseError(
        'no JSON object found: reply with one JSON object like {"type": "Movie", "genres": ["Comedies"]}'
    )


def _lowered(preference: Preference, field: str) -> set[str]:
    return {v.lower() for v in getattr(preference, field)}


def _map_vocabulary(data: dict[str, Any], vocabulary: Vocabulary) -> tuple[dict[str, Any], list[str]]:
    """Replace free spellings with catalog names; values with no good match are dropped and noticed."""
    notices: list[str] = []
    kind = data.get("type")
    wants_tv = _TYPE_WORDS.get(kind.strip().lower(), kind) == "TV Show" if isinstance(kind, str) else None
    for field, names in (
        ("genres", vocabulary.genres),
        ("exclude_genres", vocabulary.genres),
        ("countries", vocabulary.countries),
        ("exclude_countries", vocabulary.countries),
        ("ratings", vocabulary.ratings),
        ("exclude_ratings", vocabulary.ratings),
    ):
        values = data.get(field)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            continue  # validation names the bad shape
        mapped = []
        for value in values:
            if not isinstance(value, str):
                mapped.append(value)
                continue
            matches = match_vocabulary_words(value, names, prefer_tv=wants_tv)
            if not matches:
                notices.append(f"ignored {field} value {value!r}: not in the catalog ({_closest(value, names)})")
            elif len(matches) > 1:
                notices.append(f"read {field} value {value!r} as any of {', '.join(matches)}")
            mapped += [m for m in matches if m not in mapped]
        data[field] = mapped
    return data, notices


def match_vocabulary(value: str, names: Sequence[str], *, prefer_tv: bool | None = None) -> str | None:
    """The vocabulary name `value` means: exact (any case), then by content words, then a close spelling.

    Among names holding all of the value's content words, one of the wanted kind (TV or not; None: not)
    with the fewest extra words wins, so "comedy" is "Comedies" for movies and "TV Comedies" for shows.
    """
    text = value.strip().lower()
    by_lower = {n.lower(): n for n in names}
    for form in dict.fromkeys([text, _PHRASES.get(text, text)]):  # "korean": Korean TV Shows, else South Korea
        if form in by_lower:
            return by_lower[form]
        words = _content_words(form)
        scored = []
        for name in names if words else ():
            name_words = _content_words(name.lower())
            if words <= name_words:
                lowered = name.lower()
                is_tv = "tv" in re.findall(r"[a-z]+", lowered) or "series" in lowered or "shows" in lowered
                scored.append((is_tv != bool(prefer_tv), len(name_words - words), name))
        if scored:
            return min(scored)[2]
    close = difflib.get_close_matches(text, list(by_lower), n=1, cutoff=0.8)
    return by_lower[close[0]] if close else None


def match_vocabulary_words(value: str, names: Sequence[str], *, prefer_tv: bool | None = None) -> list[str]:
    """`match_vocabulary`, else one name per content word when every word has one ("Korean Drama Series" is
    Korean TV Shows or TV Dramas: lists are any-of, so the union keeps what was asked); [] when nothing fits."""
    whole = match_vocabulary(value, names, prefer_tv=prefer_tv)
    if whole is not None:
        return [whole]
    words = [w for w in re.findall(r"[a-z0-9'-]+", value.lower()) if _content_words(w)]  # in the user's order
    parts = [match_vocabulary(word, names, prefer_tv=prefer_tv) for word in words] if len(words) > 1 else [None]
    return list(dict.fromkeys(p for p in parts if p is not None)) if None not in parts else []


def _content_words(text: str) -> set[str]:
    words = (w.strip("'") for w in re.findall(r"[a-z0-9'-]+", text))
    stems = {_stem(_WORDS.get(w, w)) for w in words if w and w not in _GENRE_FILLER}
    return {_WORDS.get(s, s) for s in stems}


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _closest(value: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(names), n=3, cutoff=0.5)
    return f"closest: {', '.join(close)}" if close else "no close match"
