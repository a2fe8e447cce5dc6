"""Preference parsing: tolerant about where the JSON sits, strict about what it says; revisions vs conflicts."""

from __future__ import annotations

import json

import pytest

from agentdistill.agents.recbot_schema import (
    DEFAULT_HARD,
    Preference,
    PreferenceParseError,
    first_json_object,
    match_vocabulary,
    match_vocabulary_words,
    parse_preference,
    revise,
)
from agentdistill.memory.catalog import CatalogQuery, Vocabulary

GENRES = (
    "Action & Adventure", "Children & Family Movies", "Comedies", "Crime TV Shows", "Documentaries", "Docuseries",
    "Dramas", "Horror Movies", "Kids' TV", "Romantic Movies", "Sci-Fi & Fantasy", "Stand-Up Comedy", "TV Comedies",
    "TV Dramas", "TV Horror", "Thrillers",
)  # fmt: skip
VOCAB = Vocabulary(
    types=("Movie", "TV Show"),
    genres=GENRES,
    countries=("France", "India", "South Korea", "United Kingdom", "United States"),
    ratings=("PG", "PG-13", "R", "TV-MA"),
)


def parse(text: str, previous: Preference | None = None) -> tuple[Preference, list[str]]:
    return parse_preference(text, previous or Preference(), VOCAB)


def test_json_is_found_fenced_bare_or_followed_by_chatter() -> None:
    assert first_json_object('```json\n{"type": "Movie"}\n```\nEnjoy!') == {"type": "Movie"}
    assert first_json_object('Here you go: {"genres": ["Comedies"]} and {"x": 1}') == {"genres": ["Comedies"]}
    assert first_json_object('{broken {"vibe": "cosy"}') == {"vibe": "cosy"}
    with pytest.raises(PreferenceParseError, match="no JSON object found: reply with one JSON object like"):
        first_json_object("I think you would like a comedy.")
    with pytest.raises(PreferenceParseError):
        first_json_object('["Comedies"]')  # a list is not a preference


def test_small_model_shapes_are_normalised_onto_the_vocabulary() -> None:
    text = '{"type": "movie", "genres": "comedy", "year_min": "1990s", "countries": ["usa"], "ratings": ["pg-13"]}'
    preference, notices = parse(text)
    assert preference.type == "Movie" and preference.genres == ["Comedies"]
    assert preference.year_min == 1990 and preference.countries == ["United States"] and preference.ratings == ["PG-13"]
    assert notices == []
    shows, _ = parse('{"type": "series", "genres": ["comedy", "horror", "kids"]}')
    assert shows.type == "TV Show" and shows.genres == ["TV Comedies", "TV Horror", "Kids' TV"]


def test_vocabulary_matching_prefers_the_wanted_kind_and_rejects_nonsense() -> None:
    assert match_vocabulary("horror", GENRES) == "Horror Movies"
    assert match_vocabulary("horror", GENRES, prefer_tv=True) == "TV Horror"
    assert match_vocabulary("science fiction", GENRES) == "Sci-Fi & Fantasy"
    assert match_vocabulary("romance", GENRES) == "Romantic Movies"
    assert match_vocabulary("stand-up comedy", GENRES) == "Stand-Up Comedy"
    assert match_vocabulary("DRAMAS", GENRES) == "Dramas"
    assert match_vocabulary("korean", VOCAB.countries) == "South Korea"
    assert match_vocabulary("polka", GENRES) is None
    assert match_vocabulary_words("Korean Drama Series", GENRES + ("Korean TV Shows",), prefer_tv=True) == [
        "Korean TV Shows",
        "TV Dramas",
    ]
    assert match_vocabulary_words("horror polka", GENRES) == []  # every word must mean something


def test_a_compound_value_is_read_word_by_word_with_a_notice() -> None:
    preference, notices = parse('{"type": "TV Show", "genres": ["Crime Drama"]}')
    assert preference.genres == ["Crime TV Shows", "TV Dramas"]
    assert notices == ["read genres value 'Crime Drama' as any of Crime TV Shows, TV Dramas"]


def test_unknown_attributes_and_unmappable_values_are_ignored_with_a_notice() -> None:
    preference, notices = parse('{"genres": ["Comedies", "polka"], "mood": "happy", "budget": 3}')
    assert preference.genres == ["Comedies"]
    assert notices[0] == "ignored unknown attributes: budget, mood"
    assert notices[1].startswith("ignored genres value 'polka': not in the catalog")


def test_invalid_values_are_a_parse_error_that_names_the_field() -> None:
    with pytest.raises(PreferenceParseError, match=r"year_min: .*fix those fields"):
        parse('{"year_min": "a while ago"}')
    with pytest.raises(PreferenceParseError, match="type"):
        parse('{"type": "Podcast"}')
    with pytest.raises(PreferenceParseError, match="hard names unknown fields"):
        parse('{"hard": ["vibe"]}')


def test_fields_the_model_leaves_out_keep_their_values_and_written_ones_replace_them() -> None:
    previous = Preference(type="Movie", genres=["Dramas"], year_min=2000)
    kept, _ = parse('{"countries": ["France"]}', previous)
    assert (kept.type, kept.genres, kept.year_min, kept.countries) == ("Movie", ["Dramas"], 2000, ["France"])
    cleared, _ = parse('{"genres": [], "year_min": null}', previous)
    assert cleared.genres == [] and cleared.year_min is None and cleared.type == "Movie"


def test_no_more_horror_revises_the_wish_instead_of_contradicting_it() -> None:
    previous = Preference(type="Movie", genres=["Horror Movies", "Thrillers"])
    # the model forgot to take horror out of genres: the new exclusion wins, it is not a conflict
    revised, notices = parse('{"exclude_genres": ["horror"]}', previous)
    assert revised.genres == ["Thrillers"] and revised.exclude_genres == ["Horror Movies"]
    assert revised.conflicts() == []
    assert notices == ["revised: Horror Movies moved from genres to exclude_genres"]
    # and back: wanting it again takes it out of the exclusions
    again, notices = parse('{"genres": ["Horror Movies"]}', revised)
    assert again.genres == ["Horror Movies"] and again.exclude_genres == []
    assert notices == ["revised: Horror Movies moved from exclude_genres to genres"]


def test_older_ones_drop_an_old_lower_bound_that_the_new_upper_bound_contradicts() -> None:
    previous = Preference(year_min=2015)
    revised, notices = parse('{"year_max": 2005}', previous)
    assert (revised.year_min, revised.year_max) == (None, 2005) and revised.conflicts() == []
    assert notices == ["revised: dropped year_min 2015, which contradicts the new year_max 2005"]
    shorter, notices = revise(Preference(duration_min=120), Preference(duration_min=120, duration_max=90))
    assert (shorter.duration_min, shorter.duration_max) == (None, 90) and len(notices) == 1


def test_contradictions_within_one_turn_are_conflicts() -> None:
    both, _ = parse('{"genres": ["horror"], "exclude_genres": ["horror"], "year_min": 2015, "year_max": 2010}')
    assert both.conflicts() == ["genre 'Horror Movies' is both wanted and excluded", "year_min 2015 > year_max 2010"]
    assert Preference(type="Movie", seasons_max=2).conflicts() == [
        "type 'Movie' but seasons_max 2 (only shows have seasons)"
    ]
    assert Preference(people=["Tom Hanks"], exclude_people=["tom hanks"]).conflicts() == [
        "person 'Tom Hanks' is both wanted and excluded"
    ]


def test_hard_and_soft_queries_split_the_constraints() -> None:
    preference = Preference(
        type="Movie", genres=["Comedies"], exclude_genres=["Horror Movies"], year_max=1999, people=["Jim Carrey"]
    )
    assert preference.hard == list(DEFAULT_HARD)
    assert preference.hard_query() == CatalogQuery(types=("Movie",), exclude_genres=("Horror Movies",))
    assert preference.soft_query() == CatalogQuery(genres=("Comedies",), year_max=1999, people=("Jim Carrey",))
    assert preference.full_query() == CatalogQuery(
        types=("Movie",), genres=("Comedies",), exclude_genres=("Horror Movies",), year_max=1999, people=("Jim Carrey",)
    )
    strict = preference.model_copy(update={"hard": ["type", "year_max"]})
    assert strict.hard_query() == CatalogQuery(types=("Movie",), year_max=1999)


def test_describe_shows_only_what_was_said() -> None:
    assert Preference().describe() == "{}"
    assert Preference(type="TV Show", vibe="cosy").describe() == '{"type": "TV Show", "vibe": "cosy"}'


def test_deeply_nested_json_is_a_parse_error_not_a_crash() -> None:
    from agentdistill.agents.common import json_values

    [*values] = json_values("{" + '"a":' * 5 + "[" * 50_000)
    assert values and all(isinstance(v, json.JSONDecodeError) for v in values[:3])
    with pytest.raises(PreferenceParseError):
        parse_preference("[" * 50_000, Preference(), VOCAB)
