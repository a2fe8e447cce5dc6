"""The code agent with scripted models, the REAL Python sandbox, a real SQLite trajectory store and checkpoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from agentdistill.agents.codeact import STOP, FirstThought, SAGConfig, build_codeact_graph
from agentdistill.agents.codeact_parse import (
    REPEAT_HINT,
    CodeAction,
    Vote,
    parse_code_action,
    render_observation,
    vote_key,
)
from agentdistill.agents.common import EmptyQuestion
from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import ParseFault, Tool
from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig
from agentdistill.trajectory import Recorder, Run


def code(body: str, thought: str = "I compute it.") -> str:
    return f"Thought: {thought}\n```python\n{body}\n```"


def search_over(corpus: dict[str, str]) -> Tool:
    def search(query: str) -> str:
        """Search the knowledge base for `query`."""
        return corpus.get(query.lower().strip(), "No passages match.")

    return Tool.from_function(search)


def boom(x: str) -> str:
    """Always fails."""
    raise RuntimeError("disk on fire")


@pytest.fixture(scope="module")
def sandbox() -> PythonSandbox:
    return PythonSandbox(SandboxConfig(timeout_s=10.0))


@pytest.fixture
def store(home: Path) -> Iterator[TrajectoryStore]:
    with TrajectoryStore.open(home / "t.db") as opened:
        yield opened


def graph_for(model: ScriptedModel, store: TrajectoryStore, sandbox: PythonSandbox, tools=(), **kw):
    return build_codeact_graph(model, list(tools), sandbox=sandbox, recorder=Recorder(store, agent="codeact"), **kw)


def kinds(run: Run) -> list[str]:
    return [s.kind if s.kind != "tool" else f"tool:{s.tool}" for s in run.steps]


def test_happy_path_prints_then_final_answer_keeping_state(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel([
        code("import math\ndef area(r):\n    return math.pi * r * r\nx = 6 * 7\nprint(x)"),
        code("print(round(area(1), 2))", "State is kept: the function from the last cell still exists."),
        code("final_answer(x)", "x holds the answer.") + "\nObservation: invented text after the block",
    ])  # fmt: skip
    out = graph_for(model, store, sandbox).invoke({"question": " What is 6 times 7? "})
    assert (out["answer"], out["status"], out["steps"], out["error"]) == ("42", "ok", 3, None)
    assert all(call["stop"] == STOP and call["n"] == 1 and call["temperature"] == 0 for call in model.calls)
    assert model.history[1][-1]["content"] == "Observation:\n42"
    assert model.history[2][-1]["content"] == "Observation:\n3.14"
    assert out["messages"][-2]["content"] == "Thought: x holds the answer.\n```python\nfinal_answer(x)\n```"
    assert out["messages"][-1]["content"] == "Observation:\nfinal_answer called with 42"
    [run] = store.runs()
    assert (run.status, run.answer, run.question) == ("ok", "42", "What is 6 times 7?")
    assert kinds(run) == ["model", "tool:python"] * 3
    assert run.steps[0].parsed == {"thought": "I compute it.", "code": run.steps[1].tool_args["code"], "sample": 0}
    assert all(s.error is None for s in run.steps)


def test_execution_error_is_an_observation_the_model_recovers_from(
    store: TrajectoryStore, sandbox: PythonSandbox
) -> None:
    model = ScriptedModel([code("total = 10\nprint(total / 0)"), code("final_answer(total / 2)", "Divide by 2.")])
    out = graph_for(model, store, sandbox).invoke({"question": "Half of ten?"})
    assert (out["answer"], out["status"]) == ("5.0", "ok")
    seen = model.history[1][-1]["content"]
    assert seen.startswith("Observation:\nError: ZeroDivisionError") and "line 2" in seen
    [run] = store.runs()
    assert run.steps[1].error.kind == "execution_error" and "ZeroDivisionError" in run.steps[1].error.message
    assert run.steps[0].error is None and run.steps[3].error is None  # the parse was fine; only the code failed


def test_missing_code_block_gets_a_hint(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel(["Thought: easy.\nThe answer is 4.", code("final_answer(2 + 2)")])
    out = graph_for(model, store, sandbox).invoke({"question": "2 + 2?"})
    assert (out["answer"], out["status"]) == ("4", "ok")
    hint = model.history[1][-1]["content"]
    assert hint.startswith("Observation:\nError: no code block found") and "final_answer" in hint
    assert model.history[1][-2]["content"] == "Thought: easy.\nThe answer is 4."
    [run] = store.runs()
    assert kinds(run) == ["model", "model", "tool:python"]  # nothing ran for the unparsable step
    assert run.steps[0].error.kind == "parse_error" and run.steps[0].parsed is None


def test_an_invented_observation_is_cut_and_gets_the_hint(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel(["Observation:\n16", code("final_answer(16)")])
    out = graph_for(model, store, sandbox).invoke({"question": "How many eggs?"})
    assert out["answer"] == "16" and out["messages"][2]["content"] == ""
    assert "no code block found" in out["messages"][3]["content"]


def test_max_steps_ends_the_run_with_a_clear_status(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel([code("print('still thinking')")], repeat_last=True)
    out = graph_for(model, store, sandbox, max_steps=3).invoke({"question": "Will it ever end?"})
    assert (out["status"], out["answer"], out["steps"]) == ("max_steps", None, 3)
    assert "stopped after 3 steps" in out["error"]
    assert model.history[1][-1]["content"] == "Observation:\nstill thinking"
    assert model.history[2][-1]["content"] == f"Observation:\nstill thinking\n{REPEAT_HINT}"  # a nudge to finish
    [run] = store.runs()
    assert (run.status, run.model_calls, run.error.kind) == ("max_steps", 3, "max_steps")


def test_hundred_malformed_actions_end_in_max_steps(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel(["no code here"], repeat_last=True)
    out = graph_for(model, store, sandbox, max_steps=100).invoke({"question": "Loop?"})
    assert (out["status"], out["steps"]) == ("max_steps", 100)
    [run] = store.runs()
    assert run.model_calls == 100 and all(s.error.kind == "parse_error" for s in run.steps)


def test_host_tools_are_callable_from_code_and_a_raising_tool_is_reported(
    store: TrajectoryStore, sandbox: PythonSandbox
) -> None:
    corpus = {"capital of australia": "[1] Canberra: Canberra is the capital city of Australia."}
    model = ScriptedModel([
        code('r = search(query="capital of Australia")\nprint(r)\nprint(boom("x"))'),
        code('final_answer(r.split(":")[0].split()[-1])', "The passage names Canberra."),
    ])  # fmt: skip
    out = graph_for(model, store, sandbox, tools=[search_over(corpus), Tool.from_function(boom)]).invoke(
        {"question": "What is the capital of Australia?"}
    )
    assert (out["answer"], out["status"]) == ("Canberra", "ok")
    seen = model.history[1][-1]["content"]
    assert "Canberra is the capital city" in seen and "Error: tool 'boom' failed: RuntimeError: disk on fire" in seen
    system_prompt = model.history[0][0]["content"]
    assert "search(query: str): Search the knowledge base" in system_prompt and "final_answer(answer)" in system_prompt
    [run] = store.runs()
    assert kinds(run) == ["model", "tool:search", "tool:boom", "tool:python", "model", "tool:python"]
    assert run.steps[1].tool_args == {"query": "capital of Australia"} and run.steps[1].error is None
    assert run.steps[2].error.kind == "tool_exception"


def test_each_run_gets_a_fresh_session(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel([code("secret = 7\nfinal_answer(secret)"), code("print(secret)"), code("final_answer(0)")])
    graph = graph_for(model, store, sandbox)
    assert graph.invoke({"question": "first"})["answer"] == "7"
    graph.invoke({"question": "second"})
    assert "NameError: name 'secret' is not defined" in model.history[2][-1]["content"]


def test_first_thought_prefix_opens_the_first_assistant_turn(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    writer = ScriptedModel(["Thought: Ann buys 4 pens at 3 dollars,\nso she pays 4 * 3.\n```python\nignored"])
    model = ScriptedModel([code("final_answer(4 * 3)", "I multiply.")])
    out = graph_for(model, store, sandbox, first_thought=FirstThought(model=writer)).invoke(
        {"question": "Ann buys 4 pens at 3 dollars each. What does she pay?"}
    )
    thought = "Ann buys 4 pens at 3 dollars, so she pays 4 * 3."
    assert out["answer"] == "12" and out["first_thought"] == thought
    assert "Task: Ann buys 4 pens" in writer.history[0][0]["content"] and "```" in writer.calls[0]["stop"]
    assert f"Your first thought: {thought}" in model.history[0][-1]["content"]
    assert out["messages"][2]["content"] == f"Thought: {thought} I multiply.\n```python\nfinal_answer(4 * 3)\n```"
    [run] = store.runs()
    assert run.models == {"first_thought": "scripted:inline", "policy": "scripted:inline"}
    first = run.steps[0]
    assert (first.kind, first.role, first.parsed) == ("model", "first_thought", {"first_thought": thought})
    assert first.completion.startswith("Thought: Ann buys 4 pens")
    assert kinds(run)[1:] == ["model", "tool:python"] and run.steps[1].role == "policy"


def test_first_thought_by_the_policy_model_prefixes_even_an_unparsable_turn(
    store: TrajectoryStore, sandbox: PythonSandbox
) -> None:
    model = ScriptedModel(["Add the two numbers.", "Thought: so 5.", code("final_answer(5)")])
    out = graph_for(model, store, sandbox, first_thought=FirstThought()).invoke({"question": "2 + 3?"})
    assert out["answer"] == "5"
    assert out["messages"][2]["content"] == "Thought: Add the two numbers. so 5."
    assert not out["messages"][4]["content"].startswith("Thought: Add")  # only the first turn is prefixed


SAG_SAMPLES = [
    "The answer is 13.",  # unparsable
    code("final_answer(1 / 0)"),  # raises
    code("final_answer(12)"),
    code("n = 3 * 4\nfinal_answer(n)"),
    code("final_answer(int('12'))"),
]


def test_sag_majority_wins_and_every_sample_is_recorded(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel(SAG_SAMPLES)
    out = graph_for(model, store, sandbox, sag=SAGConfig(n=5, temperature=0.7)).invoke({"question": "3 * 4?"})
    assert (out["answer"], out["status"], out["steps"]) == ("12", "ok", 1)
    assert model.calls[0]["n"] == 5 and model.calls[0]["temperature"] == 0.7
    assert out["messages"][2]["content"] == code("final_answer(12)")  # the first member of the winning group
    [run] = store.runs()
    assert kinds(run) == ["model", "event", "tool:python"]
    step, vote = run.steps[0], run.steps[1]
    assert step.samples == SAG_SAMPLES and step.params["n"] == 5 and step.parsed["sample"] == 2
    assert vote.role == "sag_vote"
    assert vote.data["groups"] == [{"key": "final_answer: 12", "members": [2, 3, 4], "count": 3}]
    assert vote.data["unparsable"] == [0] and [r["index"] for r in vote.data["raised"]] == [1]
    assert "ZeroDivisionError" in vote.data["raised"][0]["error"]
    assert (vote.data["chosen"], vote.data["fallback"]) == (2, False)


def test_sag_candidates_do_not_pollute_the_session(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel([
        code("items = [1]\nprint(len(items))"), code("items = [1]\nprint(len(items))"), code("items = [9, 9, 9]"),
        *[code("items.append(2)\nprint(len(items))")] * 3,  # run three times, each in its own fork
        *[code("final_answer(sum(items))")] * 3,
    ])  # fmt: skip
    out = graph_for(model, store, sandbox, sag=SAGConfig(n=3)).invoke({"question": "sum?"})
    assert (out["answer"], out["steps"]) == ("3", 3)
    assert model.history[1][-1]["content"] == "Observation:\n1"
    assert model.history[2][-1]["content"] == "Observation:\n2"
    votes = [s.data for s in store.runs()[0].steps if s.kind == "event"]
    assert votes[0]["groups"] == [
        {"key": "stdout: 1", "members": [0, 1], "count": 2},
        {"key": "stdout: ", "members": [2], "count": 1},
    ]


def test_sag_falls_back_to_the_first_parsable_sample_when_all_raise(
    store: TrajectoryStore, sandbox: PythonSandbox
) -> None:
    model = ScriptedModel(
        ["nothing", code("print(undefined_a)"), code("print(undefined_b)"), *[code("final_answer(1)")] * 3]
    )
    out = graph_for(model, store, sandbox, sag=SAGConfig(n=3)).invoke({"question": "q?"})
    assert out["answer"] == "1"
    assert "NameError: name 'undefined_a'" in model.history[1][-1]["content"]
    run = store.runs()[0]
    vote = next(s for s in run.steps if s.kind == "event")
    assert (vote.data["chosen"], vote.data["fallback"], vote.data["groups"]) == (1, True, [])
    assert run.steps[2].error.kind == "execution_error"


def test_sag_with_no_parsable_sample_is_a_parse_error(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    model = ScriptedModel(["a", "b", *[code("final_answer(2)")] * 2])
    out = graph_for(model, store, sandbox, sag=SAGConfig(n=2)).invoke({"question": "q?"})
    assert out["answer"] == "2" and "no code block" in model.history[1][-1]["content"]
    run = store.runs()[0]
    assert run.steps[0].error.kind == "parse_error" and run.steps[1].data["unparsable"] == [0, 1]


def test_thread_resume_sees_earlier_turns(store: TrajectoryStore, sandbox: PythonSandbox, tmp_path: Path) -> None:
    path, config = tmp_path / "threads.db", {"configurable": {"thread_id": "t1"}}
    with sqlite3.connect(path, check_same_thread=False) as conn:
        first = graph_for(ScriptedModel([code("final_answer(12)")]), store, sandbox, checkpointer=SqliteSaver(conn))
        assert first.invoke({"question": "3 * 4?"}, config=config)["answer"] == "12"
    model = ScriptedModel([code("final_answer(24)")])  # a restart: new connection, graph and model
    with sqlite3.connect(path, check_same_thread=False) as conn:
        second = graph_for(model, store, sandbox, checkpointer=SqliteSaver(conn))
        out = second.invoke({"question": "and doubled?"}, config=config)
    assert out["history"] == [["3 * 4?", "12"], ["and doubled?", "24"]]
    prompt = model.history[0][-1]["content"]
    assert prompt.startswith("Earlier in this conversation:\nQ: 3 * 4?\nA: 12\n")
    assert "\nTask: and doubled?\n" in prompt and prompt.endswith("```python code block.")
    runs = store.runs()
    assert [r.question for r in runs] == ["3 * 4?", "and doubled?"] and runs[0].id != runs[1].id


def test_bad_input_and_a_dying_model(store: TrajectoryStore, sandbox: PythonSandbox) -> None:
    with pytest.raises(EmptyQuestion):
        graph_for(ScriptedModel([]), store, sandbox).invoke({"question": "  "})
    with pytest.raises(ConfigError):
        SAGConfig(n=0)
    model = ScriptedModel([code("print(1)")])  # the script runs out on step 2, like an endpoint dying
    with pytest.raises(AssertionError):
        graph_for(model, store, sandbox).invoke({"question": "q?"})
    [run] = store.runs()
    assert run.status == "error" and run.error.kind == "ScriptExhausted"
    assert kinds(run) == ["model", "tool:python", "model"] and run.steps[-1].error.kind == "ScriptExhausted"


def test_parse_code_action_variants() -> None:
    assert parse_code_action("Thought: a\nb\n```py\nx = 1\n```\nmore") == CodeAction("a b", "x = 1")
    assert parse_code_action("```\nprint(2)\n```") == CodeAction("", "print(2)")
    assert parse_code_action("Thought: t\n```python\nprint(3)\n") == CodeAction(
        "t", "print(3)"
    )  # stopped at <end_code>
    assert isinstance(parse_code_action("Thought: t\n```python\nprint(3", cut_off=True), ParseFault)
    assert isinstance(parse_code_action("```python\n\n```"), ParseFault)
    assert CodeAction("", "x").message_text("first") == "Thought: first\n```python\nx\n```"


def test_a_bare_final_answer_line_runs_but_fenceless_prose_or_other_code_does_not() -> None:
    # Qwen2.5-Coder-1.5B's habit after an Observation that held the result: the call without a fence.
    assert parse_code_action("final_answer(72.0)") == CodeAction("", "final_answer(72.0)")
    assert parse_code_action("Thought: done.\nfinal_answer('a b')") == CodeAction("done.", "final_answer('a b')")
    for text in ("The answer is 72.", "final_answer(72)\nprint(3)", "final_answer(72) and more", "print(72)"):
        assert isinstance(parse_code_action(text), ParseFault), text


def test_observation_and_vote_helpers() -> None:
    assert render_observation("", None, None) == "Observation:\n(no output: use print() to see values)"
    assert (
        render_observation("1\n", "NameError: x", "5")
        == "Observation:\n1\nError: NameError: x\nfinal_answer called with 5"
    )
    vote = Vote()
    for index, key in enumerate([vote_key("a", None), vote_key(" b ", None), vote_key("b", None), vote_key("a", None)]):
        vote.add(index, key)
    assert vote.winner() == ("stdout: a", 0)  # a tie goes to the group seen first
    assert vote_key("anything", "7") == "final_answer: 7"


def test_no_sandbox_worker_outlives_its_run(store: TrajectoryStore, tmp_path: Path) -> None:
    workdirs = tmp_path / "sandboxes"
    workdirs.mkdir()
    sandbox = PythonSandbox(SandboxConfig(tmp_root=str(workdirs)))
    plain = ScriptedModel([code("x = 1"), code("final_answer(x)"), code("print(2)")])
    graph_for(plain, store, sandbox).invoke({"question": "ok run"})
    assert list(workdirs.iterdir()) == []  # finished: the session's dir (and worker) are gone
    with pytest.raises(AssertionError):  # the script runs out mid-run: the node frees the session on its way out
        graph_for(plain, store, sandbox).invoke({"question": "dying run"})
    assert list(workdirs.iterdir()) == []
    voted = ScriptedModel([code("print(1)"), code("print(2)"), code("print(1)"), *[code("final_answer(1)")] * 3])
    graph_for(voted, store, sandbox, sag=SAGConfig(n=3)).invoke({"question": "sag run"})
    assert list(workdirs.iterdir()) == []  # losing forks and the adopted winner are all closed
