"""Per-agent checks of student replies, and per-node students in real graphs built with scripted models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.agents.codeact import FirstThought, build_codeact_graph
from agentdistill.agents.factory import build_agent
from agentdistill.agents.fallback_checks import (
    CHECKS,
    ROLES,
    UnknownNodeName,
    code_key,
    decision_key,
    decomposition_key,
    fallback_check,
    marked_answer_key,
    node_models,
    plan_key,
    preference_key,
    react_key,
    short_answer_key,
)
from agentdistill.agents.lag import build_lag_graph
from agentdistill.agents.materials import build_materials_graph
from agentdistill.agents.react import build_react_graph
from agentdistill.agents.recbot import build_recbot_graph
from agentdistill.memory.catalog import Catalog
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.fallback import FallbackModel, FallbackPolicy
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.tools.catalog import make_catalog_tools
from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig
from agentdistill.trajectory import Recorder, Run

JAWS = "Who is the spouse of the director of Jaws?"
SUBS = [("q1", "Who directed Jaws?", []), ("q2", "Who is the spouse of #q1?", ["q1"])]
PLAN = json.dumps({"subquestions": [{"id": i, "question": q, "depends_on": d} for i, q, d in SUBS]})


def search_tool() -> Tool:
    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base for `query`; return up to k numbered passages with titles."""
        return "[1] Jaws: directed by Steven Spielberg, whose spouse is Kate Capshaw."

    return Tool.from_function(search)


def models_of(run: Run) -> list[tuple[str, str | None]]:
    return [(s.node, s.model) for s in run.steps if s.kind == "model"]


def test_react_key_reads_actions_and_answers_and_rejects_format_faults() -> None:
    spaced = 'Thought: look\nAction: Search\nAction Input: {"query":  "x", "k": 2}'
    assert react_key(spaced) == react_key('Action: search\nAction Input: {"k": 2, "query": "x"}')
    assert react_key("Thought: done\nFinal Answer: Canberra") == ("final", "canberra")
    assert react_key("I think it is Canberra") is None and react_key("") is None


def test_code_key_normalises_layout_and_rejects_prose() -> None:
    assert code_key("Thought: add\n```python\nx = 1+2  # sum\nprint( x )\n```") == code_key(
        "```py\nx = 1 + 2\nprint(x)\n```"
    )
    assert code_key("final_answer(42)") == ("code", "final_answer(42)")  # codeact runs a bare final_answer call
    assert code_key("The answer is 42.") is None and code_key("```python\n\n```") is None


def test_decomposition_key_needs_a_valid_dag() -> None:
    assert decomposition_key(f"Here is the plan:\n{PLAN}") == (
        ("q1", "who directed jaws?", ()), ("q2", "who is the spouse of #q1?", ("q1",))
    )  # fmt: skip
    cyclic = json.dumps({"subquestions": [{"id": "q1", "question": "a #q2", "depends_on": ["q2"]},
                                          {"id": "q2", "question": "b #q1", "depends_on": ["q1"]}]})  # fmt: skip
    assert decomposition_key(cyclic) is None and decomposition_key("Who directed Jaws?") is None


def test_recbot_keys_check_the_json_shape_of_the_parser_and_the_planner() -> None:
    assert preference_key('{"type": "Movie", "genres": ["comedy"], "mood": "x"}') == json.dumps(
        {"genres": ["comedy"], "type": "Movie"}, sort_keys=True
    )
    assert preference_key('{"year_min": 1800}') is None  # out of range: the real parse rejects it too
    assert preference_key("a funny movie please") is None
    assert plan_key('{"steps": [{"tool": "filter"}, {"tool": "rank"}]}') is not None
    assert plan_key('{"steps": [{"tool": "dance"}]}') is None and plan_key("filter then rank") is None


def test_answer_keys_of_the_one_call_agents_lag_and_materials() -> None:
    assert marked_answer_key("So...\nFinal Answer: **Paris**.") == "paris" and marked_answer_key("Paris") is None
    assert short_answer_key("Answer: Steven Spielberg.\nmore") == "steven spielberg" and short_answer_key(" ") is None
    assert decision_key("Delegate: data\nTask: band gap of Si") == ("data", "band gap of si")
    assert decision_key("I will look it up") is None


def test_unknown_names_fail_naming_the_valid_ones() -> None:
    with pytest.raises(UnknownNodeName, match=r"no model role or node 'decompse'.*decompose, policy.*'decompose'"):
        fallback_check("lag", "decompse")
    with pytest.raises(UnknownNodeName, match="parser"):
        node_models("recbot", ScriptedModel([]), {"parsers": ScriptedModel([])}, policy=None)


def test_every_named_role_or_node_exists_in_its_graph(rec_catalog: Catalog) -> None:
    sandbox = PythonSandbox(SandboxConfig())
    builders = {
        "lag": lambda m, r: build_lag_graph(m, [search_tool()], recorder=r),
        "react": lambda m, r: build_react_graph(m, [search_tool()], recorder=r, on_repeat="answer"),
        "codeact": lambda m, r: build_codeact_graph(m, [], sandbox=sandbox, recorder=r, first_thought=FirstThought()),
        "recbot": lambda m, r: build_recbot_graph(m, make_catalog_tools(rec_catalog), catalog=rec_catalog, recorder=r),
        "cot": lambda m, r: build_agent("cot", m, recorder=r),
        "reader": lambda m, r: build_agent("reader", m, recorder=r, tools=[search_tool()]),
    }
    for agent, build in builders.items():
        recorder = Recorder(None, agent=agent)
        graph = build(ScriptedModel([]), recorder)
        assert ROLES[agent] <= set(recorder.roles), agent
        assert set(CHECKS[agent]) - ROLES[agent] <= set(graph.get_graph().nodes), agent
    recorder = Recorder(None, agent="materials")  # its step and think are its assistants' (react, codeact) nodes
    graph = build_materials_graph(ScriptedModel([]), [], sandbox=sandbox, recorder=recorder)
    assert ROLES["materials"] == set(recorder.roles) and "decide" in graph.get_graph().nodes


def test_only_the_lag_decomposer_is_a_student(home: Path) -> None:
    student = ScriptedModel([PLAN], spec="scripted:student")
    teacher = ScriptedModel(["Steven Spielberg", "Kate Capshaw", "Kate Capshaw"], spec="scripted:teacher")
    model = node_models("lag", teacher, {"decompose": student}, policy=FallbackPolicy())
    with TrajectoryStore.open(home / "t.db") as store:
        recorder = Recorder(store, agent="lag")
        out = build_lag_graph(model, [search_tool()], recorder=recorder).invoke({"question": JAWS})
        run = store.get(out["run_id"])
    assert out["answer"] == "Kate Capshaw"
    assert models_of(run) == [("decompose", "scripted:student"), ("resolve", "scripted:teacher"),
                              ("resolve", "scripted:teacher"), ("synthesize", "scripted:teacher")]  # fmt: skip
    assert run.models == {"policy": "scripted:teacher[decompose=scripted:student>scripted:teacher]"}
    assert len(student.history) == 1 and teacher.remaining == 0


def test_an_unparsable_plan_goes_to_the_teacher_without_a_retry_turn(home: Path) -> None:
    student = ScriptedModel(["First find the director, then the spouse."], spec="scripted:student")
    teacher = ScriptedModel([PLAN, "Steven Spielberg", "Kate Capshaw", "Kate Capshaw"], spec="scripted:teacher")
    model = node_models("lag", teacher, {"decompose": student}, policy=FallbackPolicy())
    streamed: list[str] = []
    with TrajectoryStore.open(home / "t.db") as store:
        graph = build_agent("lag", model, tools=[search_tool()], recorder=Recorder(store, agent="lag"),
                            on_token=streamed.append)  # fmt: skip
        out = graph.invoke({"question": JAWS})
        run = store.get(out["run_id"])
    decompose = run.steps[0]
    assert (decompose.model, decompose.completion, decompose.error) == ("scripted:teacher", PLAN, None)
    assert decompose.data["fallback"]["reason"] == "unparsable" and decompose.parsed is not None
    assert out["answer"] == "Kate Capshaw" and not out["faults"] and teacher.remaining == 0
    assert "".join(streamed).startswith(PLAN)  # node models stream too, with their routing kept


def test_only_recbots_parser_is_a_student(rec_catalog: Catalog, home: Path) -> None:
    plan = json.dumps({"steps": [{"tool": "filter"}, {"tool": "retrieve"}, {"tool": "rank"}, {"tool": "explain"}]})
    student = ScriptedModel(['{"type": "Movie", "genres": ["comedy"]}'], spec="scripted:student")
    teacher = ScriptedModel([plan, "Here are some comedies."], spec="scripted:teacher")
    model = node_models("recbot", teacher, {"parser": student}, policy=FallbackPolicy())
    assert isinstance(model.by_name["parser"], FallbackModel)
    with TrajectoryStore.open(home / "t.db") as store:
        recorder = Recorder(store, agent="recbot")
        graph = build_recbot_graph(model, make_catalog_tools(rec_catalog), catalog=rec_catalog, recorder=recorder)
        out = graph.invoke({"question": "a funny movie"})
        run = store.get(out["run_id"])
    assert out["preference"]["genres"] == ["Comedies"]
    assert [(s.role, s.model) for s in run.steps if s.kind == "model"] == [
        ("parser", "scripted:student"), ("planner", "scripted:teacher"), ("responder", "scripted:teacher")
    ]  # fmt: skip
    assert run.models["parser"] == "scripted:student>scripted:teacher" and run.models["planner"] == "scripted:teacher"
