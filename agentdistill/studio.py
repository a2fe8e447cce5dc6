"""The agents as LangGraph graph factories, for `langgraph dev` / LangGraph Studio (see langgraph.json).

Each factory builds the same graph `agentdistill ask --agent NAME` runs: the model is the configured one
(`model` in <home>/config.toml, or AGENTDISTILL_MODEL), overridable per run with the configurable
`model` key (any spec: `student:NAME`, `openai:NAME`, ...); the KB is the shipped sample one. The LangGraph
server brings its own checkpointer, so none is given here. Input: `{"question": "..."}`. The factories are
coroutines that build on a worker thread: the server calls them on its event loop, where opening the stores
and loading a model would block every other request.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.factory import build_agent
from agentdistill.config import load_settings
from agentdistill.memory.agent_sources import agent_sources
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import make_chat_model
from agentdistill.trajectory import Recorder


def _graph(agent: str, config: RunnableConfig | None) -> CompiledStateGraph:
    settings = load_settings()
    configurable: dict[str, Any] = dict((config or {}).get("configurable") or {})
    spec = configurable.get("model") or os.environ.get("AGENTDISTILL_MODEL") or settings.model
    model = make_chat_model(spec, settings.model_options())
    sources = agent_sources(settings, agent, "none" if agent == "cot" else "sample", None)  # as `ask` opens them
    recorder = Recorder(TrajectoryStore.open(settings.trajectories_path), agent=agent, meta={"job": "studio"})
    return build_agent(agent, model, recorder=recorder, **sources)


async def react(config: RunnableConfig | None = None) -> CompiledStateGraph:
    return await asyncio.to_thread(_graph, "react", config)


async def codeact(config: RunnableConfig | None = None) -> CompiledStateGraph:
    return await asyncio.to_thread(_graph, "codeact", config)


async def lag(config: RunnableConfig | None = None) -> CompiledStateGraph:
    return await asyncio.to_thread(_graph, "lag", config)


async def recbot(config: RunnableConfig | None = None) -> CompiledStateGraph:
    return await asyncio.to_thread(_graph, "recbot", config)


async def cot(config: RunnableConfig | None = None) -> CompiledStateGraph:
    return await asyncio.to_thread(_graph, "cot", config)


async def reader(config: RunnableConfig | None = None) -> CompiledStateGraph:
    return await asyncio.to_thread(_graph, "reader", config)


async def materials(config: RunnableConfig | None = None) -> CompiledStateGraph:
    return await asyncio.to_thread(_graph, "materials", config)
