"""The recbot graph with scripted models over a tiny real catalog and a real SQLite trajectory store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from agentdistill.agents.recbot import build_recbot_graph
from agentdistill.errors import ConfigError
from agentdistill.memory.catalog import Catalog
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import Message
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.catalog import make_catalog_tools
from agentdistill.trajectory import Recorder, Run

PLAN = json.dumps({"steps": [{"tool": "filter", "args": {"soft": True}}, {"tool": "retrieve"}, {"tool": "rank"},
                             {"tool": "explain"}]})  # fmt: skip
INTRO = "Here are some comedies you might enjoy, starting with Laugh Track."


def pref(**fields: object) -> str:
    return json.dumps(fields)


def build(catalog: Catalog, model: ScriptedModel, store: TrajectoryStore, **options: object):  # noqa: ANN201
    recorder = Recorder(store, agent="recbot")
    return build_recbot_graph(model, make_catalog_tools(catalog), catalog=catalog, recorder=recorder, **options)


@pytest.fixture
def store(home: Path):  # noqa: ANN201
    with TrajectoryStore.open(home / "t.db") as opened:
        yield opened


def prompt(messages: Sequence[Message]) -> str:
    return messages[-1]["content"]


def test_a_turn_parses_plans_executes_and_cites_the_picks(rec_catalog: Catalog, store: TrajectoryStore) -> None:
    model = ScriptedModel(
        [pref(type="Movie", genres=["comedy"], year_min=1990, year_max=1999, mood="silly"), PLAN, INTRO]
    )
    out = build(rec_catalog, model, store).invoke({"question": "a funny movie from the 90s"})
    assert out["status"] == "ok" and out["clarification"] is False
    assert sorted(out["recommended"]) == ["m3", "m4", "m5"] and out["shown"] == []
    assert out["preference"]["genres"] == ["Comedies"] and out["preference"]["year_max"] == 1999
    assert out["notices"] == ["ignored unknown attributes: mood"]
    answer = out["answer"]
    assert answer.startswith(INTRO + "\n1. ")
    for item_id in out["recommended"]:
        assert rec_catalog.get(item_id).summary() in answer
    assert "Note: ignored unknown attributes: mood" in answer
    parser_prompt = prompt(model.history[0])
    assert "Genres: Action & Adventure, " in parser_prompt and "Ratings: " in parser_prompt
    assert parser_prompt.endswith("Current preference: {}\nShown: nothing yet\nUser: a funny movie from the 90s")
    assert "- filter(soft: bool = true)" in prompt(model.history[1])
    assert "1. " in prompt(model.history[2]) and "Laugh Track" in prompt(model.history[2])
    run = store.get(out["run_id"])
    assert run.status == "ok" and run.answer == answer
    assert [(s.kind, s.role if s.kind == "model" else s.tool) for s in run.steps if s.kind != "event"] == [
        ("model", "parser"), ("model", "planner"), ("tool", "filter"), ("tool", "retrieve"), ("tool", "rank"),
        ("tool", "explain"), ("model", "responder"),
    ]  # fmt: skip
    assert run.steps[0].parsed["preference"]["genres"] == ["Comedies"]
    assert run.steps[1].parsed["plan"][0] == {"tool": "filter", "args": {"soft": True}}
    assert run.models == {"parser": "scripted:inline", "planner": "scripted:inline", "responder": "scripted:inline"}


def test_an_invalid_plan_is_retried_once_then_the_default_plan_runs(
    rec_catalog: Catalog, store: TrajectoryStore
) -> None:
    bad_order = '{"steps": [{"tool": "rank"}]}'
    model = ScriptedModel([pref(type="Movie"), "I would filter first.", bad_order, INTRO])
    out = build(rec_catalog, model, store, k=3).invoke({"question": "any movie"})
    assert out["status"] == "ok" and len(out["recommended"]) == 3
    assert "no JSON plan found" in prompt(model.history[2])  # the retry shows the model its error
    assert [s["tool"] for s in out["plan"]] == ["filter", "retrieve", "rank", "explain"]
    run = store.get(out["run_id"])
    planner_calls = [s for s in run.steps if s.role == "planner"]
    assert [s.error.kind for s in planner_calls] == ["plan_error", "plan_error"]
    assert "starts with rank" in planner_calls[1].error.message
    [fallback] = events(run, "plan_fallback")
    assert len(fallback.data["errors"]) == 2


def test_a_valid_retry_is_used(rec_catalog: Catalog, store: TrajectoryStore) -> None:
    retrieve_only = '{"steps": [{"tool": "retrieve", "args": {"text": "haunted house"}}]}'
    model = ScriptedModel([pref(), '{"steps": [{"tool": "explain"}]}', retrieve_only, INTRO])
    out = build(rec_catalog, model, store, k=2).invoke({"question": "something about a haunted house"})
    assert out["plan"] == [{"tool": "retrieve", "args": {"text": "haunted house"}}]
    assert set(out["recommended"]) == {"m1", "s1"}  # the two haunted-house descriptions


def test_an_unparsable_preference_is_retried_then_the_previous_one_is_kept(
    rec_catalog: Catalog, store: TrajectoryStore
) -> None:
    model = ScriptedModel(["You want a movie!", '{"year_min": "recent-ish"}', PLAN, INTRO])
    out = build(rec_catalog, model, store).invoke({"question": "something good"})
    assert out["status"] == "ok" and out["preference"]["year_min"] is None
    assert out["notices"][0] == "could not read the new wishes from that message; kept the previous ones"
    assert "That reply is not usable: no JSON object found" in prompt(model.history[1])
    run = store.get(out["run_id"])
    assert [s.error.kind for s in run.steps if s.role == "parser"] == ["parse_error", "parse_error"]


def test_a_contradiction_gets_a_clarifying_question_not_an_empty_list(
    rec_catalog: Catalog, store: TrajectoryStore
) -> None:
    question = "Do you want horror movies or not?"
    model = ScriptedModel([pref(genres=["horror"], exclude_genres=["horror"]), question])
    out = build(rec_catalog, model, store).invoke({"question": "horror but no horror"})
    assert (out["answer"], out["status"], out["clarification"], out["recommended"]) == (question, "ok", True, [])
    assert "genre 'Horror Movies' is both wanted and excluded" in prompt(model.history[1])
    # a model that does not ask still yields a question naming the contradiction
    rambling = ScriptedModel([pref(year_min=2015, year_max=2000), "Sure."])
    out = build(rec_catalog, rambling, store).invoke({"question": "after 2015 and before 2000"})
    assert out["answer"] == "Your wishes contradict each other (year_min 2015 > year_max 2000). Which do you mean?"


def test_relaxed_constraints_are_named_in_the_answer(rec_catalog: Catalog, store: TrajectoryStore) -> None:
    model = ScriptedModel([pref(type="Movie", genres=["Comedies"], countries=["France"]), PLAN, INTRO])
    out = build(rec_catalog, model, store).invoke({"question": "a French comedy"})
    assert out["notices"] == ["relaxed: countries"]
    assert "Nothing matched every wish, so I relaxed: countries." in out["answer"]
    assert out["recommended"] and all("Comedies" in rec_catalog.get(i).genres for i in out["recommended"])


def test_injection_text_from_the_user_flows_into_filters_as_values(
    rec_catalog: Catalog, store: TrajectoryStore
) -> None:
    evil = "'; DROP TABLE items; --"
    model = ScriptedModel([pref(people=[evil], exclude_people=['x" OR 1=1 --'], vibe=evil), PLAN, INTRO])
    out = build(rec_catalog, model, store).invoke({"question": f"a movie with {evil}"})
    assert out["status"] == "ok" and out["recommended"] and out["notices"] == ["relaxed: people"]
    assert len(rec_catalog.items()) == 14


def test_multi_turn_revisions_through_the_sqlite_checkpointer(
    rec_catalog: Catalog, store: TrajectoryStore, home: Path
) -> None:
    turn1 = [pref(type="Movie", genres=["horror"]), PLAN, "Two scary picks."]
    # turn 2: "no more horror" (the model forgets to drop it from genres: revised, not a conflict)
    turn2 = [pref(type="Movie", genres=["Horror Movies", "Comedies"], exclude_genres=["Horror Movies"]), PLAN, "Fun!"]
    # turn 3: "like Laugh Track but shorter" (it is 92 minutes)
    turn3 = [pref(similar_to=["Laugh Track"], duration_max=90), PLAN, "Shorter ones."]
    model = ScriptedModel(turn1 + turn2 + turn3)
    config = {"configurable": {"thread_id": "rec1"}}
    with sqlite3.connect(home / "threads.db", check_same_thread=False) as conn:
        graph = build(rec_catalog, model, store, checkpointer=SqliteSaver(conn), k=2)
        first = graph.invoke({"question": "a horror movie"}, config)
        assert sorted(first["recommended"]) == ["m1", "m2"] and first["shown"] == []
        second = graph.invoke({"question": "no more horror, something funny"}, config)
        assert "Shown: The Haunting Hour (Movie, 2016" in prompt(model.history[3]) or "Shown: Night Screams" in prompt(
            model.history[3]
        )
        assert '"genres": ["Horror Movies"]' in prompt(model.history[3])  # the parser saw the current preference
        assert second["preference"]["genres"] == ["Comedies"]
        assert second["preference"]["exclude_genres"] == ["Horror Movies"] and second["clarification"] is False
        assert "revised: Horror Movies moved from genres to exclude_genres" in second["notices"]
        assert sorted(second["shown"]) == ["m1", "m2"]
        assert second["recommended"] and all("Comedies" in rec_catalog.get(i).genres for i in second["recommended"])
        third = graph.invoke({"question": "like Laugh Track but shorter"}, config)
    shown_before = set(second["shown"]) | set(second["recommended"])
    assert set(third["shown"]) == shown_before
    assert third["recommended"] and not set(third["recommended"]) & shown_before
    for item_id in third["recommended"]:
        item = rec_catalog.get(item_id)
        assert item_id != "m3" and item.type == "Movie" and item.duration_min <= 90
        assert "Horror Movies" not in item.genres
    runs = store.runs()
    assert [r.meta for r in runs] == [{"thread_id": "rec1", "turn": t} for t in range(3)]
    assert len({r.id for r in runs}) == 3 and all(r.status == "ok" for r in runs)


def test_parser_only_turns_make_one_model_call(rec_catalog: Catalog, store: TrajectoryStore) -> None:
    model = ScriptedModel([pref(type="Movie", genres=["comedy"], year_min=1990, year_max=1999)])
    out = build(rec_catalog, model, store, planner=False, responder=False).invoke({"question": "a 90s comedy film"})
    assert len(model.history) == 1 and out["status"] == "ok"
    assert sorted(out["recommended"]) == ["m3", "m4", "m5"]  # the default chain, as after a failed plan
    assert out["answer"].startswith("Here is what I found.\n1. ")
    run = store.get(out["run_id"])
    assert [s.role for s in run.steps if s.kind == "model"] == ["parser"]
    contradiction = ScriptedModel([pref(year_min=2015, year_max=2000)])
    out = build(rec_catalog, contradiction, store, responder=False).invoke({"question": "after 2015, before 2000"})
    assert out["clarification"] and out["answer"].endswith("Which do you mean?") and len(contradiction.history) == 1


def test_bad_settings_and_missing_tools_fail_before_any_call(rec_catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="'k' is 0"):
        build_recbot_graph(ScriptedModel([]), make_catalog_tools(rec_catalog), catalog=rec_catalog, k=0)
    with pytest.raises(ConfigError, match="catalog tools including filter or retrieve"):
        build_recbot_graph(ScriptedModel([]), [], catalog=rec_catalog)
    with pytest.raises(ConfigError, match="'planner' is 'no': expected true or false"):
        build_recbot_graph(ScriptedModel([]), make_catalog_tools(rec_catalog), catalog=rec_catalog, planner="no")


def events(run: Run, name: str) -> list:  # noqa: ANN201 - steps
    return [s for s in run.steps if s.kind == "event" and s.role == name]


@pytest.mark.integration
def test_the_shipped_parser_student_runs_in_the_graph(rec_catalog: Catalog, store: TrajectoryStore) -> None:
    from agentdistill.models import ModelOptions, make_chat_model
    from agentdistill.models.packaged import find_packaged, is_installed

    if not is_installed(find_packaged("smollm2-135m"))[0]:
        pytest.skip("packaged SmolLM2 not installed")
    student = make_chat_model("student:recbot-parser-135m", ModelOptions(threads=2))
    out = build(rec_catalog, student, store, planner=False, responder=False).invoke(
        {"question": "I'd like to watch a movie released in 2015 or later."}
    )
    assert out["status"] == "ok" and not out["notices"]  # the student's reply parsed as a preference
    assert out["preference"]["type"] == "Movie" and out["preference"]["year_min"] == 2015
    run = store.get(out["run_id"])
    assert [(s.role, s.model) for s in run.steps if s.kind == "model"] == [("parser", "student:recbot-parser-135m")]
