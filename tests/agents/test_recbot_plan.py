"""recbot plans: validated before they run; execution enforces hard constraints, relaxes, and is SQL-safe."""

from __future__ import annotations

import pytest

from agentdistill.agents.recbot_plan import (
    PlanError,
    default_plan,
    execute_plan,
    filter_query,
    parse_plan,
)
from agentdistill.agents.recbot_schema import Preference
from agentdistill.memory.catalog import Catalog, CatalogQuery

FULL = (
    '{"steps": [{"tool": "filter", "args": {"soft": true}}, '
    '{"tool": "retrieve", "args": {"text": "road trip", "k": 10}}, '
    '{"tool": "rank", "args": {"diversity": 0.5}}, {"tool": "explain", "args": {}}]}'
)


def test_a_valid_plan_parses_fenced_or_bare() -> None:
    plan = parse_plan(f"Here is the plan:\n```json\n{FULL}\n```\nDone.")
    assert [s.tool for s in plan.steps] == ["filter", "retrieve", "rank", "explain"]
    assert plan.steps[1].parsed_args().text == "road trip" and plan.steps[1].parsed_args().k == 10
    assert parse_plan('[{"tool": "retrieve"}, "rank"]').steps[1].tool == "rank"  # bare list, bare step name
    assert parse_plan('{"plan": [{"tool": "Filter", "arguments": {"soft": false}}]}').steps[0].args == {"soft": False}
    assert default_plan().steps[0].tool == "filter"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rank the comedies please", "no JSON plan found"),
        ('{"steps": [{"tool": "rank"}, {"tool": "filter"}]}', "starts with rank: start with filter or retrieve"),
        ('{"steps": [{"tool": "filter"}, {"tool": "explain"}, {"tool": "rank"}]}', "explain must be the last step"),
        ('{"steps": [{"tool": "filter"}, {"tool": "filter"}]}', "filter appears more than once"),
        ('{"steps": [{"tool": "search"}]}', "steps.0.tool: Input should be 'filter', 'retrieve', 'rank' or 'explain'"),
        ('{"steps": [{"tool": "retrieve", "args": {"k": 0}}]}', "k: Input should be greater than or equal to 1"),
        ('{"steps": [{"tool": "filter", "args": {"genre": "x"}}]}', "genre: Extra inputs are not permitted"),
        ('{"steps": []}', "steps: List should have at least 1 item"),
    ],
)
def test_invalid_plans_say_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_plan(text)


def test_a_tool_the_graph_was_not_given_is_rejected() -> None:
    with pytest.raises(PlanError, match="unknown tool 'rank': use only filter, retrieve"):
        parse_plan('{"steps": [{"tool": "filter"}, {"tool": "rank"}]}', allowed=("filter", "retrieve"))


def test_filter_query_combines_hard_soft_dropped_and_excluded() -> None:
    preference = Preference(type="Movie", genres=["Comedies"], year_max=1999, exclude_genres=["Horror Movies"])
    hard = filter_query(preference, soft=False, dropped=(), exclude_ids=["m3"])
    assert hard == CatalogQuery(types=("Movie",), exclude_genres=("Horror Movies",), exclude_ids=("m3",))
    both = filter_query(preference, soft=True, dropped=["year_max"], exclude_ids=[])
    assert both == CatalogQuery(types=("Movie",), genres=("Comedies",), exclude_genres=("Horror Movies",))


def test_execution_meets_the_wishes_and_never_shows_excluded_titles(rec_catalog: Catalog) -> None:
    preference = Preference(type="Movie", genres=["Comedies"], year_min=1990, year_max=1999)
    logged: list[tuple[str, str]] = []
    done = execute_plan(default_plan(), preference, rec_catalog, question="a 90s comedy", exclude_ids=["m4"], k=5,
                        log=lambda tool, args, text: logged.append((tool, text)))  # fmt: skip
    ids = [p.id for p in done.picks]
    assert sorted(ids) == ["m3", "m5"] and done.relaxed == []  # m4 was shown already; m10 is from 1985
    assert [tool for tool, _ in logged] == ["filter", "retrieve", "rank", "explain"]
    assert logged[0][1].startswith(
        '2 titles match {"types": ["Movie"], "genres": ["Comedies"], "year_min": 1990, "year_max": 1999}'
    )
    assert all(p.why for p in done.picks) and "Laugh Track (Movie, 1994" in {p.id: p.summary for p in done.picks}["m3"]


def test_like_x_but_shorter_excludes_x_and_keeps_the_length(rec_catalog: Catalog) -> None:
    preference = Preference(type="Movie", similar_to=["long goodbye road"], duration_max=100)
    done = execute_plan(default_plan(), preference, rec_catalog, question="like Long Goodbye Road but shorter")
    ids = [p.id for p in done.picks]
    assert "m5" not in ids and ids  # the liked title itself is not recommended back
    assert all(rec_catalog.get(i).duration_min <= 100 for i in ids)
    assert ids[0] in ("m3", "m9")  # the closest road-trip comedies that are short enough


def test_nothing_matches_so_soft_wishes_are_relaxed_first_and_reported(rec_catalog: Catalog) -> None:
    # no French comedies: countries is relaxed before genres; type stays hard
    preference = Preference(type="Movie", genres=["Comedies"], countries=["France"], year_min=1990)
    done = execute_plan(default_plan(), preference, rec_catalog, question="a french comedy")
    assert done.relaxed == ["countries"]
    assert done.picks and all(rec_catalog.get(p.id).type == "Movie" for p in done.picks)
    assert {p.id for p in done.picks} <= {"m3", "m4", "m5", "m9"}


def test_hard_constraints_other_than_type_and_exclusions_relax_last(rec_catalog: Catalog) -> None:
    preference = Preference(type="TV Show", year_max=1990, genres=["TV Comedies"], hard=["type", "year_max"])
    done = execute_plan(default_plan(), preference, rec_catalog, question="an old sitcom")
    assert done.relaxed == ["genres", "year_max"]
    assert {p.id for p in done.picks} <= {"s1", "s2", "s3", "s4"}
    only_type = Preference(type="TV Show", exclude_genres=["TV Comedies", "TV Horror", "Crime TV Shows"])
    assert execute_plan(default_plan(), only_type, rec_catalog, question="x").picks == []  # never relaxed


def test_injection_strings_in_wishes_are_values_not_sql(rec_catalog: Catalog) -> None:
    nasty = ["'; DROP TABLE items; --", "%", "_", 'Robert"); DELETE FROM items; --', "O'Brien"]
    preference = Preference(people=nasty, exclude_people=["%"], vibe="' OR 1=1 --")
    done = execute_plan(default_plan(), preference, rec_catalog, question="'; DROP TABLE items; --", k=3)
    assert done.relaxed == ["people"]  # nobody is called '%': the wildcard matched nothing, it was a value
    assert len(done.picks) == 3 and len(rec_catalog) == 14 and len(rec_catalog.items()) == 14
