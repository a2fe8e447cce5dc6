"""The chat's agents, built once per (agent, model spec, sources) and reused for every turn that names them.

Loading a local model or embedding a KB takes seconds to minutes, so nothing is rebuilt per message. A graph is
built with callbacks that relay its streamed tokens and recorded steps to whichever turn it is serving; a turn
holds its model's lock for its whole length, so two turns never interleave on one in-process model (nor on the
relay). Every failure to build is a BadInput that names the form field to fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

from agentdistill.agents.factory import build_agent
from agentdistill.commands.chat import EchoRecorder
from agentdistill.config import Settings
from agentdistill.errors import AgentDistillError
from agentdistill.memory.agent_sources import NO_KB, open_catalog, open_kb, open_materials
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import ChatModel
from agentdistill.trajectory import Step

# The form field each agent answers from (the page shows only that one); cot answers from the question alone.
SOURCE_FIELD: Mapping[str, str | None] = {
    "react": "kb", "codeact": "kb", "lag": "kb", "reader": "kb", "cot": None,
    "recbot": "catalog", "materials": "materials",
}  # fmt: skip
DEFAULT_KB = "sample"  # as `agentdistill chat`: the shipped HotpotQA passages, built on first use


class BadInput(AgentDistillError):
    """A turn request the user can fix: `field` is the form field (agent, model, question, kb, ...) to change."""

    def __init__(self, field: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class AgentKey:
    """What makes one built agent: turns with an equal key share its graph and model."""

    agent: str
    model: str
    kb: str = NO_KB  # a KB name under <home>/kb, or "none"
    catalog: str | None = None  # recbot: a catalog directory; None: the shipped Netflix titles
    materials: str | None = None  # materials: a records directory; None: MP_API_KEY's live API or the sample


class TurnSink(Protocol):
    """Where a serving agent sends what its graph does: the turn being served (chat_turns.ChatTurn)."""

    def started(self, run_id: str) -> None: ...

    def token(self, text: str) -> None: ...

    def step(self, step: Step) -> None: ...


class Relay:
    """Forwards a graph's callbacks to the sink of the turn it serves; nothing while it serves none."""

    def __init__(self) -> None:
        self.sink: TurnSink | None = None

    def started(self, run_id: str) -> None:
        if self.sink is not None:
            self.sink.started(run_id)

    def token(self, text: str) -> None:
        if self.sink is not None:
            self.sink.token(text)

    def step(self, step: Step) -> None:
        if self.sink is not None:
            self.sink.step(step)


class RelayRecorder(EchoRecorder):
    """The chat's recorder, which also tells the relay each new run's id (so a stopped turn can name its run)."""

    def __init__(self, store: TrajectoryStore, *, agent: str, relay: Relay) -> None:
        super().__init__(store, agent=agent, on_step=relay.step)
        self.meta["interface"] = "ui"  # as `ask` records "ask": the trajectory table can tell where a run began
        self.relay = relay

    def start(self, question: str, *, meta: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        started = super().start(question, meta=meta, run_id=run_id)
        self.relay.started(started)
        return started


@dataclass
class LiveAgent:
    """A built graph, the lock of its model, and the relay its callbacks go through."""

    key: AgentKey
    graph: Any
    lock: threading.Lock
    relay: Relay = field(default_factory=Relay)

    @contextmanager
    def serving(self, sink: TurnSink) -> Iterator[None]:
        """Hold the model for one turn and send the graph's tokens and steps to `sink` meanwhile."""
        with self.lock:
            self.relay.sink = sink
            try:
                yield
            finally:
                self.relay.sink = None


@dataclass
class _ModelSlot:
    model: ChatModel
    lock: threading.Lock = field(default_factory=threading.Lock)


class AgentCache:
    """Built agents by key and loaded models by spec; agents sharing a spec share its model and its lock."""

    def __init__(
        self,
        settings: Settings,
        store: TrajectoryStore,
        checkpointer: BaseCheckpointSaver,
        make_model: Callable[[str], ChatModel],
    ) -> None:
        self.settings = settings
        self.store = store
        self.checkpointer = checkpointer
        self.make_model = make_model
        self._agents: dict[AgentKey, LiveAgent] = {}
        self._models: dict[str, _ModelSlot] = {}
        self._lock = threading.Lock()  # one build at a time: two first turns must not load one model twice

    def __len__(self) -> int:
        return len(self._agents)

    def get(self, key: AgentKey) -> LiveAgent:
        """The agent for `key`, built on first use (slow: it may load a model or embed a KB); BadInput on failure."""
        with self._lock:
            live = self._agents.get(key)
            if live is None:
                slot = self._model(key.model)
                sources = open_sources(self.settings, key)
                relay = Relay()
                recorder = RelayRecorder(self.store, agent=key.agent, relay=relay)
                try:
                    graph = build_agent(key.agent, slot.model, recorder=recorder, checkpointer=self.checkpointer,
                                        on_token=relay.token, **sources)  # fmt: skip
                except AgentDistillError as exc:  # e.g. lag without a KB
                    raise BadInput(SOURCE_FIELD.get(key.agent) or "agent", str(exc)) from None
                live = self._agents[key] = LiveAgent(key, graph, slot.lock, relay)
            return live

    def _model(self, spec: str) -> _ModelSlot:
        slot = self._models.get(spec)
        if slot is None:
            try:
                slot = self._models[spec] = _ModelSlot(self.make_model(spec))
            # the spec is the user's input: a bad prefix, a missing file or an unreadable script is theirs to fix
            except (AgentDistillError, OSError, ValueError) as exc:
                raise BadInput("model", f"model {spec!r}: {exc}") from None
        return slot


def open_sources(settings: Settings, key: AgentKey) -> dict[str, Any]:
    """`build_agent`'s kb / catalog / materials keywords for `key`; BadInput names the field that failed."""
    source = SOURCE_FIELD.get(key.agent, "kb")
    opened: dict[str, Any] = {"kb": None, "catalog": None, "materials": None}
    try:
        if source == "kb":
            opened["kb"] = open_kb(settings, key.kb)
        elif source == "catalog":
            where = Path(key.catalog).expanduser() if key.catalog else None
            opened["catalog"] = open_catalog(settings, key.agent, where)
        elif source == "materials":
            where = Path(key.materials).expanduser() if key.materials else None
            opened["materials"] = open_materials(settings, key.agent, materials_dir=where)
    except AgentDistillError as exc:
        raise BadInput(source or "agent", str(exc)) from None
    return opened
