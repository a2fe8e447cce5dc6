"""LangChain both ways: our models stream into LangGraph's messages mode; LangChain chat models drive our graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

from agentdistill.agents.factory import build_agent
from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import make_chat_model
from agentdistill.models.langchain_adapter import AgentdistillChatModel, LangChainModel
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder

LOOK = 'Thought: look it up\nAction: search\nAction Input: {"query": "capital of Australia"}'
DONE = "Thought: I know it\nFinal Answer: Canberra"


def search(query: str, k: int = 3) -> str:
    """Search the knowledge base for `query`."""
    return "[1] Canberra: Canberra is the capital city of Australia."


def test_graph_stream_messages_carries_our_models_tokens_node_by_node(home: Path) -> None:
    model = ScriptedModel([LOOK, DONE])
    with TrajectoryStore.open(home / "t.db") as store:
        graph = build_agent("react", model, tools=[Tool.from_function(search)], recorder=Recorder(store, agent="react"))
        events = list(graph.stream({"question": "What is the capital of Australia?"}, stream_mode="messages"))
        [run] = store.runs()
    chunks = [(m, meta) for m, meta in events if isinstance(m, AIMessageChunk) and m.content]
    assert len(chunks) > 4  # token by token, not one message per call
    assert {meta["langgraph_node"] for _, meta in chunks} == {"step"}
    streamed = "".join(m.content for m, _ in chunks)
    assert streamed == LOOK + DONE  # the two calls' texts, whole and in order
    assert [s.completion for s in run.steps if s.kind == "model"] == [LOOK, DONE]  # still recorded as before


def test_a_langchain_chat_model_drives_our_graph_and_is_recorded_under_its_name(home: Path) -> None:
    chat = FakeListChatModel(responses=[LOOK + "\nObservation: invented", DONE])
    with TrajectoryStore.open(home / "t.db") as store:
        graph = build_agent("react", chat, tools=[Tool.from_function(search)], recorder=Recorder(store, agent="react"))
        out = graph.invoke({"question": "What is the capital of Australia?"})
        [run] = store.runs()
    assert (out["answer"], out["status"]) == ("Canberra", "ok")
    first = run.steps[0]
    assert first.model == "langchain:FakeListChatModel" and "invented" not in first.completion  # cut at the stop


def test_our_model_as_a_langchain_chat_model_invokes_streams_and_counts_tokens() -> None:
    chat = AgentdistillChatModel(model=ScriptedModel(["Canberra is the capital.", "Canberra."]), max_tokens=32)
    reply = chat.invoke([SystemMessage("Be brief."), HumanMessage("Capital of Australia?")], stop=[" is"])
    assert reply.content == "Canberra" and reply.usage_metadata["output_tokens"] > 0
    streamed = list(chat.stream([HumanMessage("again")]))
    assert "".join(c.content for c in streamed) == "Canberra."
    assert chat.model.history[0][0] == {"role": "system", "content": "Be brief."}


def test_langchain_specs_build_the_class_or_say_what_to_install() -> None:
    model = make_chat_model("langchain:langchain_core.language_models.fake_chat_models:FakeChatModel")
    assert isinstance(model, LangChainModel) and model.generate([{"role": "user", "content": "hi"}])[0].text
    with pytest.raises(ConfigError, match="pip install langchain-ollama"):
        make_chat_model("langchain:langchain_ollama:ChatOllama?model=qwen2.5")
    with pytest.raises(ConfigError, match="package.module:ClassName"):
        make_chat_model("langchain:ChatOpenAI")
