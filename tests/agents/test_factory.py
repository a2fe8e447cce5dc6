"""build_agent: default tools per agent, streaming, options pass-through, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.agents.factory import (
    AGENTS,
    KnowledgeBaseRequired,
    StreamingModel,
    UnknownAgent,
    build_agent,
    default_tools,
)
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder


def search(query: str, k: int = 3) -> str:
    """Search the knowledge base."""
    return "[1] Canberra: Canberra is the capital city of Australia." if "capital" in query else "No passages match."


@pytest.fixture
def store(home: Path) -> TrajectoryStore:
    with TrajectoryStore.open(home / "t.db") as opened:
        yield opened


def test_unknown_agent_lists_the_valid_ones() -> None:
    assert AGENTS == ("react", "codeact", "lag", "recbot", "cot", "reader", "materials")
    with pytest.raises(UnknownAgent, match="unknown agent 'reactt': choose one of react, codeact, lag, recbot, cot"):
        build_agent("reactt", ScriptedModel([]), kb=None, recorder=None)


def test_default_tools_without_a_knowledge_base() -> None:
    assert [t.name for t in default_tools("react", None)] == ["evaluate", "simplify", "solve", "equivalent"]
    assert default_tools("codeact", None) == []
    with pytest.raises(KnowledgeBaseRequired, match="--kb"):
        default_tools("lag", None)


def test_default_tools_with_a_knowledge_base(home: Path, store: TrajectoryStore) -> None:
    kb = KnowledgeStore.create("t", home / "kb", embedder=HashingEmbedder(64))
    kb.add([{"id": "c", "title": "Canberra", "text": "Canberra is the capital city of Australia."}], progress=False)
    assert [t.name for t in default_tools("react", kb)][:2] == ["search", "lookup"]
    assert [t.name for t in default_tools("codeact", kb)] == ["search"]
    assert [t.name for t in default_tools("lag", kb)] == ["search"]
    model = ScriptedModel(['Action: lookup\nAction Input: {"title": "Canberra"}', "Final Answer: Canberra"])
    out = build_agent("react", model, kb=kb, recorder=Recorder(store, agent="react")).invoke({"question": "capital?"})
    assert out["answer"] == "Canberra"
    assert model.history[1][-1]["content"].startswith(
        "Observation: Canberra: Canberra is the capital city of Australia."
    )


def test_react_streams_tokens_and_uses_the_real_math_tools(store: TrajectoryStore) -> None:
    streamed: list[str] = []
    model = ScriptedModel(
        ['Thought: compute\nAction: evaluate\nAction Input: {"expression": "2^10 + 1"}', "Final Answer: 1025"]
    )
    graph = build_agent(
        "react", model, kb=None, recorder=Recorder(store, agent="react"), max_steps=3, on_token=streamed.append
    )
    out = graph.invoke({"question": "What is 2^10 + 1?"})
    assert (out["answer"], out["status"]) == ("1025", "ok")
    assert "".join(streamed) == model_texts(store) and len(streamed) > 4  # word by word, as produced
    [run] = store.runs()
    assert run.steps[1].tool == "evaluate" and "1025" in run.steps[1].observation
    assert run.models == {"policy": "scripted:inline"}  # the streaming adapter keeps the spec


def model_texts(store: TrajectoryStore) -> str:
    return "".join(s.completion or "" for r in store.runs() for s in r.steps if s.kind == "model")


def test_codeact_gets_a_sandbox_with_sympy_and_the_kb_search(store: TrajectoryStore) -> None:
    model = ScriptedModel(
        [
            "Thought: solve it\n```python\nx = sympy.symbols('x')\nprint(sympy.solve(2*x - 8, x))\n"
            "print(search(query='capital of Australia'))\n```",
            "Thought: done\n```python\nfinal_answer(4)\n```",
        ]
    )
    graph = build_agent(
        "codeact", model, kb=None, tools=[Tool.from_function(search)], recorder=Recorder(store, agent="codeact")
    )
    out = graph.invoke({"question": "Solve 2x = 8."})
    assert (out["answer"], out["status"]) == ("4", "ok")
    observation = model.history[1][-1]["content"]
    assert "[4]" in observation and "Canberra is the capital" in observation


def test_options_reach_the_graph_builder() -> None:
    build_agent("lag", ScriptedModel([]), kb=None, tools=[Tool.from_function(search)], recorder=None, k=2)
    with pytest.raises(TypeError, match="no_such_option"):
        build_agent("react", ScriptedModel([]), kb=None, tools=[], recorder=None, no_such_option=1)


def test_streaming_adapter_leaves_multi_sample_calls_alone() -> None:
    streamed: list[str] = []
    model = StreamingModel(ScriptedModel(["a b", "c d", "e f"]), streamed.append)
    model.generate([{"role": "user", "content": "q"}], n=2)
    assert streamed == []
    assert model.generate([{"role": "user", "content": "q"}])[0].text == "e f" and "".join(streamed) == "e f"


def test_tool_names_pick_the_default_tools_and_a_qa_suite_gives_react_the_kb_only(home: Path) -> None:
    from agentdistill.agents.factory import metric_options
    from agentdistill.errors import ConfigError

    kb = KnowledgeStore.create("t", home / "kb", embedder=HashingEmbedder(64))
    kb.add([{"id": "c", "title": "Canberra", "text": "Canberra is the capital city of Australia."}], progress=False)
    assert metric_options("react", "qa", {}) == {"tool_names": "kb"}
    assert metric_options("react", "math", {}) == {}
    assert metric_options("react", "qa", {"tool_names": "search,evaluate"}) == {"tool_names": "search,evaluate"}
    model = ScriptedModel(["Final Answer: 4"])
    build_agent("react", model, kb=kb, recorder=None, tool_names="lookup,evaluate", search_first=0).invoke(
        {"question": "2+2?"}
    )
    tools_shown = model.history[0][0]["content"]
    assert "lookup(" in tools_shown and "evaluate(" in tools_shown and "search(" not in tools_shown
    with pytest.raises(ConfigError, match="tool_names.*among search, lookup, evaluate"):
        build_agent("react", model, kb=kb, recorder=None, tool_names="search,web")
    kb_only = ScriptedModel(["Final Answer: 4"])
    build_agent("react", kb_only, kb=kb, recorder=None, tool_names="kb").invoke({"question": "2+2?"})
    assert "search(" in kb_only.history[0][0]["content"] and "evaluate(" not in kb_only.history[0][0]["content"]
    no_kb = ScriptedModel(["Final Answer: 4"])  # a QA suite without a KB: `kb` keeps the default tools
    build_agent("react", no_kb, kb=None, recorder=None, tool_names="kb").invoke({"question": "2+2?"})
    assert "evaluate(" in no_kb.history[0][0]["content"]
