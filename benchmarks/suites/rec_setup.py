"""What a run of a recommendation suite needs besides its items: the catalog, the episode, one graph per session.

`bench run` and `distill run` both run the rec suites, and both must build them the same way, or a distilled
student would be measured on other sessions, another simulated user or a graph without per-session memory than
its teacher was collected on. This module is that one way; the commands only choose the models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.memory import InMemorySaver

from agentdistill.agents.factory import build_agent
from agentdistill.benchmarks.item_worker import Episode
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.models.base import ChatModel
from agentdistill.trajectory import Recorder

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    from agentdistill.memory.catalog import Catalog

UserModel = Callable[[str | None], ChatModel]  # the `user_model` option (None: the caller's default) -> the model


def suite_catalog(
    suite: Suite, home: Path, embedder: str | None = None, device: str | None = None
) -> Catalog | None:  # fmt: skip
    """The packaged catalog for recommendation suites (built on first use with the embedder); None for others."""
    if suite.episode is None:
        return None
    # imported here: only catalog suites need the catalog code (SQLite, FAISS) and an embedder
    from agentdistill.memory.catalog import default_catalog
    from agentdistill.memory.embedders import make_embedder

    return default_catalog(home, make_embedder(embedder, device=device))


def rec_episode(
    kind: str, catalog: Catalog, options: Mapping[str, Any], user_model: UserModel
) -> tuple[dict[str, Any], Episode]:
    """The agent's own options (the simulated user's taken out) and the episode that plays each item.

    `user_model` is asked only for an LLM user, so a rule user never loads a model it does not use.
    """
    from agentdistill.benchmarks.suites.rec_episode import make_episode, make_user, split_options

    settings, agent_options = split_options(options)
    model = user_model(settings.user_model) if settings.user == "llm" else None
    return agent_options, make_episode(kind, catalog, settings, make_user(settings, catalog, model))


def session_graph(
    model: ChatModel, recorder: Recorder, catalog: Catalog, options: Mapping[str, Any]
) -> CompiledStateGraph:
    """recbot for one item: a session is several turns on one thread, so each item gets its own memory."""
    return build_agent("recbot", model, kb=None, recorder=recorder, catalog=catalog, checkpointer=InMemorySaver(),
                       **options)  # fmt: skip
