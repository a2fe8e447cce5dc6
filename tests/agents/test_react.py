"""The ReAct graph with a scripted model, a real SQLite trajectory store and real SQLite checkpoints."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from agentdistill.agents.common import EmptyQuestion
from agentdistill.agents.react import (
    LAST_CALL_NOTE,
    REPEAT_NOTE,
    SHORTENED_NOTE,
    STOP,
    FinalAnswer,
    ReactAction,
    build_react_graph,
    fit_context,
    parse_react,
)
from agentdistill.agents.react_parse import to_tool_call
from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import ParseFault, Tool, ToolCall
from agentdistill.trajectory import Recorder

CUE = "\n\nContinue with your next Thought."  # prompts/react_observation.txt: stops small models echoing it
CORPUS = {
    "capital of australia": "[1] Canberra: Canberra is the capital city of Australia.",
    "population of canberra": "[1] Canberra: Canberra has a population of about 467,000.",
}


def search_over(corpus: dict[str, str]) -> Tool:
    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base for `query`."""
        return corpus.get(query.lower().strip(), "No passages match.")

    return Tool.from_function(search)


def boom(x: str) -> str:
    """Always fails."""
    raise RuntimeError("disk on fire")


@pytest.fixture
def store(home: Path) -> TrajectoryStore:
    with TrajectoryStore.open(home / "t.db") as opened:
        yield opened


def graph_for(model: ScriptedModel, store: TrajectoryStore, tools: list[Tool] | None = None, **kw):
    kw.setdefault("search_first", 0)  # these tests script the first search themselves; test_search_first_* cover it
    return build_react_graph(model, tools or [search_over(CORPUS)], recorder=Recorder(store, agent="react"), **kw)


def test_happy_path_records_every_call_and_tool(store: TrajectoryStore) -> None:
    model = ScriptedModel([
        'Thought: capital first\nAction: search\nAction Input: {"query": "capital of Australia"}',
        'Thought: now population\nAction: search\nAction Input: {"query": "population of Canberra"}',
        "Thought: I now know the answer\nFinal Answer: about 467,000",
    ])  # fmt: skip
    out = graph_for(model, store).invoke({"question": "  How many people live in Australia's capital? "})
    assert (out["answer"], out["status"], out["steps"], out["error"]) == ("about 467,000", "ok", 3, None)
    assert all(call["stop"] == STOP for call in model.calls)
    [run] = store.runs()
    assert (run.id, run.agent, run.status, run.answer) == (out["run_id"], "react", "ok", "about 467,000")
    assert run.question == "How many people live in Australia's capital?"
    assert [s.kind for s in run.steps] == ["model", "tool", "model", "tool", "model"]
    assert run.steps[0].parsed == {
        "thought": "capital first",
        "tool": "search",
        "args": {"query": "capital of Australia"},
    }
    assert (run.steps[1].tool, run.steps[1].tool_args) == ("search", {"query": "capital of Australia"})
    assert "Canberra is the capital" in run.steps[1].observation and run.steps[1].error is None
    assert run.steps[2].messages_in[-1] == {
        "role": "user",
        "content": "Observation: [1] Canberra: Canberra is the capital city of Australia." + CUE,
    }
    assert run.steps[4].parsed == {"thought": "I now know the answer", "final_answer": "about 467,000"}
    assert (
        run.steps[0].messages_in[0]["role"] == "system"
        and "search(query: str, k: int = 3)" in (run.steps[0].messages_in[0]["content"])
    )


def test_malformed_action_goes_back_with_a_format_hint(store: TrajectoryStore) -> None:
    model = ScriptedModel(["I am not sure what to do.", "Final Answer: Canberra"])
    out = graph_for(model, store).invoke({"question": "capital of Australia?"})
    assert (out["answer"], out["status"]) == ("Canberra", "ok")
    [run] = store.runs()
    assert [s.kind for s in run.steps] == ["model", "model"]  # no tool ran for an unparsable turn
    assert run.steps[0].error.kind == "parse_error"
    observation = run.steps[1].messages_in[-1]["content"]
    assert (
        observation.startswith("Observation: Error: no 'Action:' or 'Final Answer:'") and "Action Input:" in observation
    )


def test_unknown_tool_becomes_an_observation_the_model_can_fix(store: TrajectoryStore) -> None:
    model = ScriptedModel([
        'Thought: look it up\nAction: serch\nAction Input: {"query": "capital of Australia"}',
        'Thought: typo\nAction: search\nAction Input: {"query": "capital of Australia"}',
        "Final Answer: Canberra",
    ])  # fmt: skip
    out = graph_for(model, store).invoke({"question": "What is the capital of Australia?"})
    assert (out["answer"], out["status"]) == ("Canberra", "ok")
    [run] = store.runs()
    assert run.steps[1].error.kind == "unknown_tool"
    assert "no tool 'serch'" in run.steps[2].messages_in[-1]["content"]
    assert "Did you mean 'search'?" in run.steps[2].messages_in[-1]["content"]


def test_bad_arguments_show_the_usage(store: TrajectoryStore) -> None:
    model = ScriptedModel(['Action: search\nAction Input: {"k": "many"}', "Final Answer: unknown"])
    graph_for(model, store).invoke({"question": "q?"})
    [run] = store.runs()
    assert run.steps[1].error.kind == "bad_arguments"
    seen = model.history[1][-1]["content"]
    assert "missing required argument 'query'" in seen and 'Usage: search(query="...", k=3)' in seen


def test_a_tool_that_raises_is_reported_to_the_model_not_the_user(store: TrajectoryStore) -> None:
    model = ScriptedModel(["Action: boom\nAction Input: anything", "Final Answer: could not tell"])
    out = graph_for(model, store, [Tool.from_function(boom)]).invoke({"question": "q?"})
    assert (out["status"], out["answer"]) == ("ok", "could not tell")
    [run] = store.runs()
    assert run.steps[1].error.kind == "tool_exception" and run.steps[1].tool_args == {"x": "anything"}
    assert model.history[1][-1]["content"] == "Observation: Error: tool 'boom' failed: RuntimeError: disk on fire" + CUE


def test_max_steps_ends_with_status_message_and_no_invented_answer(store: TrajectoryStore) -> None:
    action = 'Thought: again\nAction: search\nAction Input: {"query": "nothing"}'
    model = ScriptedModel([action], repeat_last=True)
    out = graph_for(model, store, max_steps=3).invoke({"question": "q?"})
    assert (out["status"], out["answer"], out["steps"]) == ("max_steps", None, 3)
    assert "stopped after 3 steps" in out["error"]
    [run] = store.runs()
    assert run.status == "max_steps" and run.error.kind == "max_steps" and "raise max_steps" in run.error.message
    assert [s.kind for s in run.steps] == ["model", "tool", "model", "tool", "model"]  # the last action is not run
    assert REPEAT_NOTE not in model.history[1][-1]["content"] and model.history[2][-1]["content"].endswith(
        REPEAT_NOTE + "\n" + LAST_CALL_NOTE + CUE  # the third call is the last one allowed, and is told so
    )
    assert LAST_CALL_NOTE not in model.history[1][-1]["content"]


def test_the_last_call_note_comes_only_before_the_last_call_and_can_be_turned_off(store: TrajectoryStore) -> None:
    first = 'Thought: capital first\nAction: search\nAction Input: {"query": "capital of Australia"}'
    model = ScriptedModel([first, "Final Answer: Canberra"])
    assert graph_for(model, store, max_steps=2).invoke({"question": "q?"})["answer"] == "Canberra"
    assert model.history[1][-1]["content"].endswith(LAST_CALL_NOTE + CUE)
    quiet = ScriptedModel([first, "Final Answer: Canberra"])
    graph_for(quiet, store, max_steps=2, last_call_note=False).invoke({"question": "q?"})
    assert LAST_CALL_NOTE not in quiet.history[1][-1]["content"]
    roomy = ScriptedModel([first, "Final Answer: Canberra"])
    graph_for(roomy, store, max_steps=8).invoke({"question": "q?"})
    assert LAST_CALL_NOTE not in roomy.history[1][-1]["content"]


def test_search_first_opens_the_turn_with_a_search_on_the_question_at_no_model_call(store: TrajectoryStore) -> None:
    corpus = {**CORPUS, "what is the capital of australia?": CORPUS["capital of australia"]}
    model = ScriptedModel(["Thought: I now know the answer\nFinal Answer: Canberra"])
    out = graph_for(model, store, [search_over(corpus)], search_first=4, max_steps=1).invoke(
        {"question": "What is the capital of Australia?"}
    )
    assert (out["status"], out["answer"]) == ("ok", "Canberra")  # max_steps=1 left room: the search is no step
    [run] = store.runs()
    assert [s.kind for s in run.steps] == ["tool", "model"]
    assert run.steps[0].tool_args == {"query": "What is the capital of Australia?", "k": 4}
    [messages] = model.history
    assert [m["role"] for m in messages] == ["system", "user"]  # under the question, not a turn put in its mouth
    assert messages[1]["content"].startswith("Question: What is the capital of Australia?\n\nA search for the")
    assert CORPUS["capital of australia"] in messages[1]["content"]


def test_search_first_marks_the_model_repeating_it_and_skips_tools_without_k(store: TrajectoryStore) -> None:
    def search(query: str) -> str:
        """Search without a k argument, as a user's own tool may be."""
        return "[1] Nothing useful."

    again = 'Thought: search\nAction: search\nAction Input: {"query": "Who is \'X\'?"}'  # re-quoted: still a repeat
    model = ScriptedModel([again, "Final Answer: none"])
    graph_for(model, store, [Tool.from_function(search)], search_first=5).invoke({"question": 'Who is "X"?'})
    assert store.runs()[0].steps[0].tool_args == {"query": 'Who is "X"?'}
    assert REPEAT_NOTE in model.history[1][-1]["content"]


def test_search_first_needs_a_search_tool_and_a_sane_k(store: TrajectoryStore) -> None:
    model = ScriptedModel(["Final Answer: 4"])
    graph_for(model, store, [Tool.from_function(boom)], search_first=5).invoke({"question": "2+2?"})
    assert [s.kind for s in store.runs()[0].steps] == ["model"] and len(model.history[0]) == 2
    with pytest.raises(ConfigError, match="search_first"):
        graph_for(ScriptedModel([]), store, search_first=11)


def test_a_long_conversation_shortens_its_oldest_observations_never_the_latest(store: TrajectoryStore) -> None:
    messages = [{"role": "system", "content": "s" * 100}, {"role": "user", "content": "q"}]
    for n in range(3):
        messages += [{"role": "assistant", "content": f"Action {n}"}, {"role": "user", "content": f"{n}" * 3000}]
    assert fit_context(messages, 20000) is messages
    fitted = fit_context(messages, 7000)
    assert [len(m["content"]) for m in fitted[3::2]] == [400 + len(SHORTENED_NOTE), 3000, 3000]  # one was enough
    assert fitted[3]["content"].endswith(SHORTENED_NOTE) and messages[3]["content"] == "0" * 3000  # not mutated
    tight = fit_context(messages, 1000)  # cannot fit: everything but the latest observation is shortened
    assert [len(m["content"]) for m in tight[3::2]] == [400 + len(SHORTENED_NOTE)] * 2 + [3000]
    long_corpus = {"a": "[1] " + "A" * 2900, "b": "[1] " + "B" * 2900}
    model = ScriptedModel([
        'Action: search\nAction Input: {"query": "a"}', 'Action: search\nAction Input: {"query": "b"}',
        "Final Answer: done",
    ])  # fmt: skip
    graph_for(model, store, [search_over(long_corpus)], context_chars=5000).invoke({"question": "q?"})
    last_call = model.history[2]
    assert last_call[3]["content"].endswith(SHORTENED_NOTE) and "B" * 2900 in last_call[5]["content"]
    with pytest.raises(ConfigError, match="context_chars"):
        graph_for(ScriptedModel([]), store, context_chars=10)


def test_max_steps_keeps_a_final_answer_written_after_an_action_as_best_guess(store: TrajectoryStore) -> None:
    model = ScriptedModel(
        ['Action: search\nAction Input: {"query": "capital of Australia"}\nFinal Answer: Sydney'], repeat_last=True
    )
    out = graph_for(model, store, max_steps=2).invoke({"question": "capital of Australia?"})
    assert (out["status"], out["answer"]) == ("max_steps", "Sydney")
    assert store.runs()[0].answer == "Sydney"
    # The guess was dropped from the conversation: the model never sees its own ungrounded answer.
    assert "Final Answer" not in model.history[1][2]["content"]


def test_a_hundred_malformed_actions_end_in_max_steps_fast(store: TrajectoryStore) -> None:
    model = ScriptedModel(["Action Input: {oops"], repeat_last=True)
    started = time.perf_counter()
    out = graph_for(model, store, max_steps=100).invoke({"question": "q?"})
    assert time.perf_counter() - started < 20
    assert (out["status"], out["steps"], out["answer"]) == ("max_steps", 100, None)
    [run] = store.runs()
    assert run.model_calls == 100 and all(s.error.kind == "parse_error" for s in run.steps)


def test_empty_question_is_a_clear_error_and_starts_no_run(store: TrajectoryStore) -> None:
    graph = graph_for(ScriptedModel([]), store)
    with pytest.raises(EmptyQuestion, match="question is empty"):
        graph.invoke({"question": "   "})
    assert store.runs() == []


def test_max_steps_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        build_react_graph(ScriptedModel([]), [], max_steps=0)


def test_thread_resumes_across_a_rebuilt_graph(store: TrajectoryStore, home: Path) -> None:
    config = {"configurable": {"thread_id": "t1"}}
    path = home / "threads.db"
    with sqlite3.connect(path, check_same_thread=False) as conn:
        first = graph_for(ScriptedModel(["Final Answer: Canberra"]), store, checkpointer=SqliteSaver(conn))
        assert first.invoke({"question": "capital of Australia?"}, config=config)["answer"] == "Canberra"
    model = ScriptedModel(["Final Answer: about 467,000"])  # a restart: new connection, graph and model
    with sqlite3.connect(path, check_same_thread=False) as conn:
        second = graph_for(model, store, checkpointer=SqliteSaver(conn))
        out = second.invoke({"question": "and its population?"}, config=config)
    assert out["history"] == [["capital of Australia?", "Canberra"], ["and its population?", "about 467,000"]]
    prompt = model.history[0][1]["content"]
    assert prompt.startswith("Earlier in this conversation:\nQ: capital of Australia?\nA: Canberra\n")
    assert prompt.endswith("Question: and its population?")
    assert len(model.history[0]) == 2  # the earlier turn's steps are not replayed, only its Q and A
    runs = store.runs()
    assert [r.question for r in runs] == ["capital of Australia?", "and its population?"]
    assert runs[0].id != runs[1].id and [r.meta for r in runs] == [
        {"thread_id": "t1", "turn": 0},
        {"thread_id": "t1", "turn": 1},
    ]


def test_empty_question_on_a_thread_leaves_the_previous_run_alone(store: TrajectoryStore) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    graph = graph_for(ScriptedModel(["Final Answer: Canberra"]), store, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"question": "capital?"}, config=config)
    with pytest.raises(EmptyQuestion):
        graph.invoke({"question": ""}, config=config)
    assert [(r.status, r.answer) for r in store.runs()] == [("ok", "Canberra")]


def test_prompts_can_be_overridden_from_a_directory(store: TrajectoryStore, tmp_path: Path) -> None:
    (tmp_path / "react_user.txt").write_text("{history}Q => {question}", encoding="utf-8")
    model = ScriptedModel(["Final Answer: x"])
    graph_for(model, store, prompts_dir=tmp_path).invoke({"question": "why?"})
    assert model.history[0][1]["content"] == "Q => why?"


# -- the parser -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tool", "args"),
    [
        ('Thought: t\nAction: search\nAction Input: {"query": "a b"}', "search", {"query": "a b"}),
        ("Action: search\nAction Input: {'query': 'a', 'k': 2}", "search", {"query": "a", "k": 2}),
        ("Action: search\nAction Input: capital of France", "search", "capital of France"),
        ('Action: search\nAction Input: "capital of France"', "search", "capital of France"),
        ('Action: `search`\nAction Input: ```json\n{"query": "x"}\n```', "search", {"query": "x"}),
        ('Action: search\nAction Input:\n```\n{"query": "x",\n "k": 1}\n```\nmore', "search", {"query": "x", "k": 1}),
        ('**Action:** search\n**Action Input:** {"query": "x"}', "search", {"query": "x"}),
        ("Action: search[capital of France]", "search", "capital of France"),
        ('Action: search(query="x", k=2)', "search", {"query": "x", "k": 2}),
        ('Action: search\nAction Input: {"query": "x"}\nObservation: no\nFinal Answer: y', "search", {"query": "x"}),
        ('Action: search_elements\nAction Input: {"elements": ["Fe"], exact: True}', "search_elements",
         {"elements": ["Fe"], "exact": True}),  # a bare key and a Python True, as Qwen2.5-Coder-0.5B writes them
    ],
)  # fmt: skip
def test_parse_action_forms_small_models_write(text: str, tool: str, args: object) -> None:
    parsed = parse_react(text)
    assert isinstance(parsed, ReactAction)
    assert (parsed.tool, parsed.args) == (tool, args)


def test_action_before_final_answer_wins_and_the_rest_is_dropped() -> None:
    text = 'Thought: look\nAction: search\nAction Input: {"query": "x"}\nThen wait.\nFinal Answer: Paris'
    parsed = parse_react(text)
    assert isinstance(parsed, ReactAction) and parsed.candidate == "Paris"
    assert parsed.kept == 'Thought: look\nAction: search\nAction Input: {"query": "x"}'


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Thought: done\nFinal Answer: Canberra", "Canberra"),
        ("It is clear. Final Answer: 42", "42"),
        ("Final Answer: Paris\nThought: should I search?\nAction: search", "Paris"),
        ("Final Answer:\n- one\n- two", "- one\n- two"),
    ],
)
def test_final_answer_anywhere_without_a_preceding_action(text: str, answer: str) -> None:
    parsed = parse_react(text)
    assert isinstance(parsed, FinalAnswer) and parsed.text == answer


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "reply was empty"),
        ("Final Answer:   ", "Final Answer is empty"),
        ("Action: search\nAction Input: {query: x}", "not valid JSON"),
        ("Action:\nAction Input: x", "names no tool"),
        ("just chatting", "no 'Action:' or 'Final Answer:'"),
    ],
)
def test_faults_explain_the_format(text: str, message: str) -> None:
    parsed = parse_react(text)
    assert isinstance(parsed, ParseFault) and message in parsed.message and parsed.message.startswith("Error:")


def test_bare_input_maps_to_the_first_parameter_and_names_resolve_case_insensitively() -> None:
    by_name = {"search": search_over(CORPUS)}
    assert to_tool_call("Search", "capital", by_name).args == {"query": "capital"}
    assert to_tool_call("search", "", by_name).args == {}
    assert to_tool_call("nope", "x", by_name) == ToolCall("nope", {"input": "x"})


def test_deeply_nested_json_in_a_reply_is_a_parse_error_the_model_sees(store: TrajectoryStore) -> None:
    deep = "[" * 100_000
    assert isinstance(parse_react(f"Action: search\nAction Input: {deep}"), (ReactAction, ParseFault))
    model = ScriptedModel([f"Action: search\nAction Input: {deep}", "Final Answer: Canberra"])
    out = graph_for(model, store).invoke({"question": "capital of Australia?"})
    assert (out["answer"], out["status"]) == ("Canberra", "ok")


def test_the_repeat_note_survives_a_long_observation(store: TrajectoryStore) -> None:
    from agentdistill.agents.react_context import OBSERVATION_LIMIT

    action = 'Thought: again\nAction: search\nAction Input: {"query": "long"}'
    model = ScriptedModel([action, action, "Final Answer: done"])
    graph = graph_for(model, store, [search_over({"long": "x" * (OBSERVATION_LIMIT + 500)})])
    assert graph.invoke({"question": "q?"})["answer"] == "done"
    second = model.history[2][-1]["content"]
    assert second.endswith(REPEAT_NOTE + CUE) and "...(truncated)" in second  # clipped once, the note after it


def test_on_repeat_answer_asks_for_the_answer_instead_of_running_the_action_again(store: TrajectoryStore) -> None:
    action = 'Thought: look\nAction: search\nAction Input: {"query": "capital of Australia"}'
    model = ScriptedModel([action, action.replace("look", "look again"), "Final Answer: Canberra [1]"])
    calls: list[str] = []
    corpus = search_over(CORPUS)

    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base for `query`."""
        calls.append(query)
        return corpus.fn(query=query, k=k)

    graph = graph_for(model, store, [Tool.from_function(search)], on_repeat="answer")
    out = graph.invoke({"question": "What is the capital of Australia?"})
    assert (out["status"], out["answer"]) == ("ok", "Canberra [1]")
    assert calls == ["capital of Australia"]  # the repeat was not run
    answer_prompt = model.history[2][-1]["content"]  # one user message: the question and this turn's results
    assert len(model.history[2]) == 1 and "What is the capital of Australia?" in answer_prompt
    assert "Canberra is the capital city of Australia." in answer_prompt and "Final Answer:" in answer_prompt
    [run] = store.runs()
    assert [s.role for s in run.steps if s.kind == "model"] == ["policy", "policy", "answer"]
    assert run.steps[-1].parsed == {"final_answer": "Canberra [1]"}


def test_on_repeat_answer_falls_back_to_the_reply_line_and_is_validated(store: TrajectoryStore) -> None:
    action = 'Action: search\nAction Input: {"query": "capital of Australia"}'
    model = ScriptedModel([action, action, "Canberra"])  # no "Final Answer:" prefix: the first line is the answer
    out = graph_for(model, store, on_repeat="answer").invoke({"question": "Capital?"})
    assert out["answer"] == "Canberra"
    with pytest.raises(ConfigError, match="on_repeat"):
        graph_for(ScriptedModel([]), store, on_repeat="twice")
