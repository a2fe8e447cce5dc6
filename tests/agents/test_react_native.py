"""Native tool calling: an openai: model over real HTTP picks tools through the API; the trajectory stays text."""

from __future__ import annotations

import json

import pytest

from agentdistill.agents.react import build_react_graph
from agentdistill.agents.react_native import NativeToolModel, render_completion, tool_schemas
from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import ModelOptions, make_chat_model
from agentdistill.models.base import Completion, ToolCallRequest
from agentdistill.models.scripted import ScriptedModel
from agentdistill.testing.openai_server import FakeOpenAIServer
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder


def search(query: str) -> str:
    """Search the knowledge base for `query`."""
    return "[1] Canberra: Canberra is the capital city of Australia." if "australia" in query.lower() else "none"


def teacher(messages):
    """Calls `search` natively first; once an observation is in the conversation, answers in plain text."""
    if (messages[-1].get("content") or "").startswith("Observation:"):
        return "Canberra"
    return json.dumps({"tool_calls": [{"name": "search", "arguments": {"query": "capital of Australia"}}],
                       "content": "I should look this up."})  # fmt: skip


def test_native_calls_run_the_tool_and_record_react_text(tmp_path):
    tools = [Tool.from_function(search)]
    with FakeOpenAIServer(teacher) as srv, TrajectoryStore.open(tmp_path / "t.db") as store:
        model = make_chat_model("openai:fake-model", ModelOptions(base_url=srv.base_url, max_retries=0))
        graph = build_react_graph(
            model, tools, recorder=Recorder(store, agent="react"), tool_calling="native", search_first=0
        )  # the script starts with its own search call
        out = graph.invoke({"question": "What is the capital of Australia?"})
        requests = srv.chat_requests
        run = store.get(out["run_id"])
    assert out["answer"] == "Canberra" and out["status"] == "ok"
    offered = requests[0].body["tools"]
    assert offered == tool_schemas(tools) and offered[0]["function"]["parameters"]["required"] == ["query"]
    model_steps = [s for s in run.steps if s.kind == "model"]
    assert model_steps[0].completion == (
        'Thought: I should look this up.\nAction: search\nAction Input: {"query": "capital of Australia"}'
    )
    assert model_steps[1].completion == "Final Answer: Canberra"
    tool_steps = [s for s in run.steps if s.kind == "tool"]
    assert tool_steps[0].tool_args == {"query": "capital of Australia"}


def test_a_model_without_native_tools_is_a_config_error():
    with pytest.raises(ConfigError, match="openai: model"):
        NativeToolModel(ScriptedModel(["x"]), [Tool.from_function(search)])
    with pytest.raises(ConfigError, match="text or native"):
        build_react_graph(ScriptedModel(["x"]), [], tool_calling="json")


def test_render_keeps_react_text_and_wraps_plain_answers():
    assert render_completion(Completion("Thought: ok\nFinal Answer: 4")).text == "Thought: ok\nFinal Answer: 4"
    assert render_completion(Completion("four")).text == "Final Answer: four"
    call = Completion("", tool_calls=(ToolCallRequest("search", '{"query": "q"}'), ToolCallRequest("x", "{}")))
    assert render_completion(call).text == 'Action: search\nAction Input: {"query": "q"}'


def test_ask_native_tools_over_http(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from agentdistill.cli import cli

    with FakeOpenAIServer(teacher) as srv:
        result = CliRunner().invoke(
            cli,
            ["--home", str(tmp_path), "ask", "What is the capital of Australia?", "--model", "openai:fake-model",
             "--kb", "none", "--native-tools", "--json"],
            env={"AGENTDISTILL_OPENAI_BASE_URL": srv.base_url},
        )  # fmt: skip
        offered = [t["function"]["name"] for t in srv.chat_requests[0].body["tools"]]
    out = json.loads(result.output)
    # No KB: only the math tools are offered, so the model's `search` call comes back as an unknown tool.
    assert "search" not in offered and "evaluate" in offered
    assert out["answer"] == "Canberra" and out["tool_calls"] == 1 and out["steps"] == 2


def test_native_tools_is_refused_for_other_agents(tmp_path):
    from click.testing import CliRunner

    from agentdistill.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "ask", "q", "--agent", "codeact", "--native-tools",
                                      "--model", "scripted:x"])  # fmt: skip
    assert result.exit_code == 2 and "react option" in result.output
