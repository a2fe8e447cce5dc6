"""The materials supervisor with scripted models: routing, delegation to the reused react and codeact graphs,
citation, and one trajectory holding every level's calls by role (real SQLite store, real sandbox)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentdistill.agents.materials import build_materials_graph, findings_text, parse_decision
from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig
from agentdistill.trajectory import Recorder


def search_formula(formula: str) -> str:
    """Materials Project records of `formula`, most stable first."""
    if formula == "Fe2O3":
        return (
            "Fe2O3: 2 record(s), most stable first:\n"
            "- mp-19770 Fe2O3 | ordering=FiM | magnetization=4.0 μB/f.u. | energy_above_hull=0 eV/atom\n"
            "- mp-24972 Fe2O3 | ordering=FM | energy_above_hull=0.05 eV/atom"
        )
    return f"no record for {formula}; did you mean Fe2O3?"


@pytest.fixture(scope="module")
def sandbox() -> PythonSandbox:
    return PythonSandbox(SandboxConfig(timeout_s=10.0))


@pytest.fixture
def store(home: Path) -> Iterator[TrajectoryStore]:
    with TrajectoryStore.open(home / "t.db") as opened:
        yield opened


def graph_for(model: ScriptedModel, store: TrajectoryStore, sandbox: PythonSandbox, **kw):
    recorder = Recorder(store, agent="materials")
    return build_materials_graph(model, [Tool.from_function(search_formula)], sandbox=sandbox, recorder=recorder, **kw)


def test_parse_decision_reads_delegations_answers_and_faults() -> None:
    assert parse_decision("Delegate: data\nTask: find Fe2O3") == ("data", "find Fe2O3")
    assert parse_decision("Thought: done\nFinal Answer: FiM (mp-19770)\nmore") == ("final", "FiM (mp-19770)")
    assert (
        parse_decision("Delegate: web\nTask: x")[0] == "fault"
        and "no assistant 'web'" in parse_decision("Delegate: web\nTask: x")[1]
    )
    assert parse_decision("I think it is magnetic.")[0] == "fault"
    assert findings_text([]) == "Nothing has been looked up yet."


def test_the_supervisor_delegates_to_data_and_answers_citing_the_record(store, sandbox) -> None:
    model = ScriptedModel([
        "Delegate: data\nTask: What is the magnetic ordering of the most stable Fe2O3?",
        'Thought: look it up\nAction: search_formula\nAction Input: {"formula": "Fe2O3"}',
        "Thought: the first is the most stable\nFinal Answer: ferrimagnetic (FiM), mp-19770",
        "Final Answer: Fe2O3 is ferrimagnetic (mp-19770)",
    ])  # fmt: skip
    out = graph_for(model, store, sandbox).invoke({"question": "What is the magnetic ordering of Fe2O3?"})
    assert (out["status"], out["answer"]) == ("ok", "Fe2O3 is ferrimagnetic (mp-19770)")
    assert out["findings"] == [["data", "What is the magnetic ordering of the most stable Fe2O3?",
                                "ferrimagnetic (FiM), mp-19770"]]  # fmt: skip
    assert "[data] reported: ferrimagnetic (FiM), mp-19770" in model.history[3][-1]["content"]
    data_system = model.history[1][0]["content"]  # the data assistant's own worked example, with its tools
    assert "Materials Project records" in data_system and "Action: search_formula" in data_system
    [run] = store.runs()  # one trajectory for the whole hierarchy
    assert run.status == "ok" and run.answer == "Fe2O3 is ferrimagnetic (mp-19770)"
    roles = [s.role for s in run.steps if s.kind == "model"]
    assert roles == ["supervisor", "data.policy", "data.policy", "supervisor"]
    assert [s.index for s in run.steps] == list(range(len(run.steps)))
    tool = next(s for s in run.steps if s.kind == "tool")
    assert tool.tool == "search_formula" and "mp-19770" in tool.observation
    events = [(s.role, s.data.get("agent")) for s in run.steps if s.kind == "event"]
    assert events == [("delegate", "data"), ("delegate_result", "data")]
    assert set(run.models) >= {"supervisor", "data.policy", "calc.policy"}


def test_calc_runs_in_the_sandbox_and_format_faults_go_back_to_the_supervisor(store, sandbox) -> None:
    model = ScriptedModel([
        "Delegate: data\nTask: the records of Fe2O3",
        'Action: search_formula\nAction Input: {"formula": "Fe2O3"}',
        "Final Answer: mp-19770",
        "The answer is probably 160.",  # neither a delegation nor an answer: told how to write one
        "Delegate: calc\nTask: molar mass of Fe2O3 with Fe 55.845 and O 15.999",
        "Thought: add it up\n```python\nfinal_answer(round(2 * 55.845 + 3 * 15.999, 2))\n```",
        "Final Answer: 159.69 g/mol (mp-19770)",
    ])  # fmt: skip
    out = graph_for(model, store, sandbox).invoke({"question": "What is the molar mass of Fe2O3?"})
    assert (out["status"], out["answer"]) == ("ok", "159.69 g/mol (mp-19770)")
    assert out["findings"][1][:2] == ["supervisor", "(format)"] and "Delegate: data" in out["findings"][1][2]
    assert out["findings"][2] == ["calc", "molar mass of Fe2O3 with Fe 55.845 and O 15.999", "159.69"]
    [run] = store.runs()
    roles = [s.role for s in run.steps if s.kind == "model"]
    assert roles == [
        "supervisor",
        "data.policy",
        "data.policy",
        "supervisor",
        "supervisor",
        "calc.policy",
        "supervisor",
    ]
    fault = [s for s in run.steps if s.kind == "model"][3]
    assert fault.error is not None and fault.error.kind == "parse_error"


def test_out_of_supervisor_calls_ends_with_the_last_report(store, sandbox) -> None:
    model = ScriptedModel([
        "Delegate: data\nTask: Fe2O3",
        'Action: search_formula\nAction Input: {"formula": "Fe2O3"}',
        "Final Answer: FiM, mp-19770",
        "Delegate: data\nTask: Fe2O3 again",
    ])  # fmt: skip
    out = graph_for(model, store, sandbox, max_steps=2).invoke({"question": "Fe2O3 ordering?"})
    assert out["status"] == "max_steps" and out["answer"] == "FiM, mp-19770" and "2 steps" in out["error"]
    [run] = store.runs()
    assert run.status == "max_steps"


def test_bad_max_steps_is_refused(sandbox) -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        build_materials_graph(ScriptedModel([]), [], sandbox=sandbox, max_steps=0)


def test_a_guess_before_any_lookup_sends_the_question_to_data_and_a_repeated_delegation_answers(store, sandbox) -> None:
    model = ScriptedModel([
        "Final Answer: FM (mp-1)",  # a guess: nothing has been looked up yet
        'Action: search_formula\nAction Input: {"formula": "Fe2O3"}',
        "Final Answer: FiM (mp-19770)",
        "Delegate: data\nTask: what is the magnetic ordering of Fe2O3",  # the question again: not run again
    ])  # fmt: skip
    question = "What is the magnetic ordering of Fe2O3?"
    out = graph_for(model, store, sandbox).invoke({"question": question})
    assert (out["status"], out["answer"]) == ("ok", "FiM (mp-19770)")
    assert out["findings"] == [["data", question, "FiM (mp-19770)"]]  # the question itself was the task
    assert len(model.history) == 4  # the repeated delegation started no assistant
    [run] = store.runs()
    supervisor_steps = [s for s in run.steps if s.kind == "model" and s.role == "supervisor"]
    assert supervisor_steps[0].error is not None and supervisor_steps[0].error.kind == "protocol_error"
    assert "answered before any assistant reported" in supervisor_steps[0].error.message
    assert supervisor_steps[-1].parsed["repeated"] is True


def test_the_supervisor_is_cut_where_it_starts_writing_an_assistants_report_itself(store, sandbox) -> None:
    model = ScriptedModel([
        "[data] task: Fe2O3\n[data] reported: FM (mp-1)\nFinal Answer: FM (mp-1)",  # an invented report: cut to ""
        'Action: search_formula\nAction Input: {"formula": "Fe2O3"}',
        "Final Answer: FiM (mp-19770)",
        "Final Answer: FiM (mp-19770)",
    ])  # fmt: skip
    out = graph_for(model, store, sandbox).invoke({"question": "What is the magnetic ordering of Fe2O3?"})
    assert (out["status"], out["answer"]) == ("ok", "FiM (mp-19770)")
    [run] = store.runs()
    first = next(s for s in run.steps if s.kind == "model")
    assert first.completion == "" and first.error is not None and first.error.kind == "protocol_error"


def test_the_answer_cites_what_the_tools_returned_not_what_the_model_made_up(store, sandbox) -> None:
    model = ScriptedModel([
        "Delegate: data\nTask: Fe2O3 magnetization",
        'Action: search_formula\nAction Input: {"formula": "Fe2O3"}',
        "Final Answer: 4.0 muB/f.u.",
        "Final Answer: 4.0 muB/f.u. (mp-55555)",  # an id no tool returned
    ])  # fmt: skip
    out = graph_for(model, store, sandbox).invoke({"question": "What is the magnetization of Fe2O3?"})
    assert out["answer"] == "4.0 muB/f.u. (mp-19770)" and out["sources"] == ["mp-19770"]
    [run] = store.runs()
    assert run.answer == "4.0 muB/f.u. (mp-19770)"
