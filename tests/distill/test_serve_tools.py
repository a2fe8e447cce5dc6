"""Native tool calls through `serve`: tools offered in the prompt, `<tool_call>` blocks returned as tool_calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.agents.factory import build_agent
from agentdistill.distill.serve_tools import (
    ToolSpecError,
    choice_line,
    offer_tools,
    parse_tool_calls,
)
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder
from tests.distill.test_serve import client, post, served, sse_payloads

SEARCH = {
    "type": "function",
    "function": {"name": "search", "description": "Search the KB.", "parameters": {"type": "object"}},
}
CALL = '<tool_call>\n{"name": "search", "arguments": {"query": "capital of Australia"}}\n</tool_call>'
HI = [{"role": "user", "content": "What is the capital of Australia?"}]


def test_blocks_for_offered_functions_become_calls_and_the_rest_stays_text() -> None:
    text, calls = parse_tool_calls(f"Let me look.\n{CALL}", ["search"])
    assert text == "Let me look." and len(calls) == 1
    assert calls[0]["function"] == {"name": "search", "arguments": '{"query": "capital of Australia"}'}
    assert calls[0]["type"] == "function" and calls[0]["id"].startswith("call_")
    unknown = CALL.replace("search", "delete_everything")
    assert parse_tool_calls(unknown, ["search"]) == (unknown, [])  # not offered: the client sees the text
    assert parse_tool_calls("<tool_call>{not json</tool_call>", ["search"])[1] == []
    _, [cut] = parse_tool_calls('<tool_call>\n{"name": "search", "arguments": {"query": "x"}}', ["search"])
    assert json.loads(cut["function"]["arguments"]) == {"query": "x"}  # a reply cut at a stop string still calls
    bare = '```json\n{"name": "search", "arguments": {"query": "Kansas Song"}}\n```'  # 0.5B dropped the tags
    assert parse_tool_calls(bare, ["search"])[0] == "" and len(parse_tool_calls(bare, ["search"])[1]) == 1
    assert parse_tool_calls('{"name": "search"}', ["search"])[1] == []  # no arguments object: just text


def test_tools_go_to_the_end_of_the_system_prompt_and_tool_choice_is_checked() -> None:
    [first, second] = offer_tools([{"role": "system", "content": "Be brief."}, *HI], [SEARCH], "required")
    assert first["content"].startswith("Be brief.\n\n# Tools") and '"name": "search"' in first["content"]
    assert first["content"].endswith("You must call at least one of the functions above.") and second == HI[0]
    assert offer_tools(HI, [SEARCH], None)[0]["role"] == "system"
    assert choice_line({"type": "function", "function": {"name": "search"}}, ["search"]) == (
        "You must call the function search."
    )
    with pytest.raises(ToolSpecError, match="not among the tools offered"):
        choice_line({"type": "function", "function": {"name": "rm"}}, ["search"])
    with pytest.raises(ToolSpecError, match="tool_choice must be"):
        choice_line("sometimes", ["search"])


def test_a_served_model_answers_with_tool_calls_and_sees_earlier_calls_and_results() -> None:
    model = ScriptedModel([CALL, "Canberra."])
    with served(model) as srv:
        first = post(srv, {"messages": HI, "tools": [SEARCH]}).json()
        [choice] = first["choices"]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        [call] = choice["message"]["tool_calls"]
        history = [*HI, choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "Canberra is."}]
        second = post(srv, {"messages": history, "tools": [SEARCH]}).json()
    assert second["choices"][0]["message"] == {"role": "assistant", "content": "Canberra."}
    assert second["choices"][0]["finish_reason"] == "stop"
    shown = model.history[1]
    assert "<tools>" in shown[0]["content"] and shown[-2]["content"].startswith("<tool_call>")
    assert shown[-1] == {"role": "user", "content": "<tool_response>\nCanberra is.\n</tool_response>"}


def test_tool_choice_none_offers_nothing_and_bad_tools_are_a_400() -> None:
    model = ScriptedModel([CALL])
    with served(model) as srv:
        reply = post(srv, {"messages": HI, "tools": [SEARCH], "tool_choice": "none"}).json()
        bad = post(srv, {"messages": HI, "tool_choice": "required"})
    assert reply["choices"][0]["message"]["content"] == CALL and "tool_calls" not in reply["choices"][0]["message"]
    assert model.history[0] == HI
    assert bad.status_code == 400 and "tool_choice needs tools" in bad.json()["error"]["message"]


def test_streamed_tool_calls_arrive_as_a_tool_calls_delta() -> None:
    with served(ScriptedModel([f"Looking.\n{CALL}"])) as srv:
        raw = post(srv, {"messages": HI, "tools": [SEARCH], "stream": True}).text
    chunks = [json.loads(p) for p in sse_payloads(raw) if p != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Looking."
    [calls] = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert calls[0]["index"] == 0 and calls[0]["function"]["name"] == "search"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_react_with_native_tools_runs_against_serve(home: Path) -> None:
    """README's pairing: `serve` a model, then `ask --native-tools` with an openai: spec pointing at it."""

    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base for `query`."""
        return "[1] Canberra: Canberra is the capital city of Australia." if "australia" in query.lower() else "-"

    model = ScriptedModel([CALL, "Canberra"])
    with served(model) as srv, TrajectoryStore.open(home / "t.db") as store:
        graph = build_agent("react", client(srv), tools=[Tool.from_function(search)],
                            recorder=Recorder(store, agent="react"), tool_calling="native")  # fmt: skip
        out = graph.invoke({"question": "What is the capital of Australia?"})
        [run] = store.runs()
    assert (out["answer"], out["status"]) == ("Canberra", "ok")
    assert "Action: search" in run.steps[0].completion  # the native call, recorded in the text protocol
    assert "capital city of Australia" in json.dumps(model.history[1])
