"""Chat turns on worker threads: each streams its tokens and steps into an event log, and can be stopped.

The stores are `agentdistill chat`'s: threads in LangGraph's SqliteSaver plus the ThreadIndex at
`<home>/threads.db`, runs in the trajectory store, so a thread started in the terminal resumes here and the other
way round. A stop request is seen at the turn's next token or recorded step: the callback raises TurnStopped,
which ends the graph as Ctrl-C ends `agentdistill chat` (the run is recorded with error kind `interrupted`, the
thread keeps its earlier turns and takes the next one).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from agentdistill.agents.turn import run_turn
from agentdistill.config import Settings
from agentdistill.errors import AgentDistillError
from agentdistill.memory.threads import ThreadIndex
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import ChatModel, make_chat_model
from agentdistill.trajectory import Step
from agentdistill.web.chat_agents import AgentCache, AgentKey, BadInput, LiveAgent
from agentdistill.web.chat_events import TurnEvents

log = logging.getLogger(__name__)
KEEP_TURNS = 200  # finished turns kept for late or reconnecting readers; older ones are dropped first
OBSERVATION_CHARS = 20_000  # of a tool result sent to the page; the whole text is in the trajectory


class TurnStopped(BaseException):
    """Raised by a stopped turn's callbacks. A BaseException, as KeyboardInterrupt is, so that no `except Exception`
    in a graph or tool takes it for a fault to report to the model; the Recorder records its `kind`."""

    kind = "interrupted"


@dataclass
class ChatTurn:
    """One question on one thread: its event log, its run id once started, and its stop flag."""

    id: str
    thread: str
    key: AgentKey
    question: str
    events: TurnEvents = field(default_factory=TurnEvents)
    run_id: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> bool:
        """Ask the turn to end at its next token or step; False when it is already over."""
        if self.events.closed:
            return False
        self._stop.set()
        return True

    def started(self, run_id: str) -> None:
        self.run_id = run_id

    def token(self, text: str) -> None:
        if self.stopping:
            raise TurnStopped
        self.events.publish("token", text=text)

    def step(self, step: Step) -> None:
        self.events.publish("step", step=step_view(step))  # recorded already: show it, then stop
        if self.stopping:
            raise TurnStopped


def step_view(step: Step) -> dict[str, Any]:
    """What the page shows of a recorded step: a tool call and its observation, a model call, or an event."""
    view: dict[str, Any] = {"kind": step.kind, "index": step.index, "node": step.node, "role": step.role,
                            "error": step.error.message if step.error else None}  # fmt: skip
    if step.kind == "tool":
        observation = step.observation or ""
        if len(observation) > OBSERVATION_CHARS:
            observation = f"{observation[:OBSERVATION_CHARS]}\n... ({len(observation)} characters in all)"
        view.update(tool=step.tool, args=step.tool_args or {}, observation=observation)
    elif step.kind == "model":  # a model that does not stream still shows what it wrote
        view.update(model=step.model, completion=step.completion, tokens=step.completion_tokens)
    else:
        view.update(data=step.data)
    return view


class ChatService:
    """The chat's state in one app: its stores, its built agents, and the turns that run or ran recently."""

    def __init__(self, settings: Settings, *, make_model: Callable[[str], ChatModel] | None = None) -> None:
        self.settings = settings
        self.store = TrajectoryStore.open(settings.trajectories_path)
        settings.threads_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(settings.threads_path, check_same_thread=False, timeout=30)
        self.saver = SqliteSaver(self._conn)
        make_model = make_model or (lambda spec: make_chat_model(spec, settings.model_options()))
        self.agents = AgentCache(settings, self.store, self.saver, make_model)
        self._turns: OrderedDict[str, ChatTurn] = OrderedDict()
        self._busy: dict[str, str] = {}  # thread id -> the turn running on it
        self._lock = threading.Lock()

    def close(self, *, wait_s: float = 10.0) -> None:
        """Stop the turns still running, give them `wait_s` to record that, and close the stores (app shutdown)."""
        with self._lock:
            running = [turn for turn in self._turns.values() if turn.stop()]
        deadline = time.monotonic() + wait_s
        for turn in running:
            turn.events.wait_closed(max(0.0, deadline - time.monotonic()))
        self.store.close()
        self._conn.close()

    # -- reading ---------------------------------------------------------------------------------------------
    def turn(self, turn_id: str) -> ChatTurn | None:
        with self._lock:
            return self._turns.get(turn_id)

    def threads(self) -> list[tuple[str, str, str, int, float]]:
        """ThreadIndex rows (id, agent, first question, turns, updated), most recently used first."""
        index = ThreadIndex(self.settings.threads_path)
        try:
            return index.rows()
        finally:
            index.close()

    def owner(self, thread: str) -> str | None:
        index = ThreadIndex(self.settings.threads_path)
        try:
            return index.agent_of(thread)
        finally:
            index.close()

    def earlier_turns(self, thread: str) -> list[tuple[str, str]]:
        """The thread's (question, answer) pairs as its agent sees them: the `history` of its latest checkpoint.

        The checkpointer, not the trajectory store, is what the agent resumes from; a stopped turn is in neither
        history nor ThreadIndex, as in `agentdistill chat`. Agents that keep no history (cot, reader) show none."""
        found = self.saver.get_tuple({"configurable": {"thread_id": thread}})
        history = found.checkpoint.get("channel_values", {}).get("history") if found else None
        return [(str(q), str(a or "")) for q, a in history or []]

    # -- running -----------------------------------------------------------------------------------------------
    def start(self, key: AgentKey, question: str, thread: str | None) -> ChatTurn:
        """Start a turn on a worker thread (a new thread id when `thread` is None); BadInput when it cannot start."""
        thread = thread or uuid.uuid4().hex[:8]
        owner = self.owner(thread)
        if owner is not None and owner != key.agent:
            raise BadInput("agent", f"thread {thread!r} was started with the {owner} agent, not {key.agent}: pick "
                           f"{owner} as the agent to resume it, or start a new thread.")  # fmt: skip
        turn = ChatTurn(uuid.uuid4().hex, thread, key, question)
        with self._lock:  # claimed before the (slow) build: a busy thread answers at once
            if thread in self._busy:
                raise BadInput("thread", f"thread {thread!r} is still answering: wait for it or stop it.", status=409)
            self._busy[thread] = turn.id
        try:
            live = self.agents.get(key)  # slow on first use: loads the model, opens the KB
        except BaseException:
            with self._lock:
                self._busy.pop(thread, None)
            raise
        with self._lock:
            self._turns[turn.id] = turn
            self._forget_old()
        threading.Thread(target=self._run, args=(turn, live), name=f"chat-turn-{turn.id[:8]}", daemon=True).start()
        return turn

    def _forget_old(self) -> None:
        while len(self._turns) > KEEP_TURNS:
            oldest = next((t for t, turn in self._turns.items() if turn.events.closed), None)
            if oldest is None:  # all still running: keep them
                return
            del self._turns[oldest]

    def _run(self, turn: ChatTurn, live: LiveAgent) -> None:
        kind, data = self._outcome(turn, live)
        with self._lock:  # free before the last event: a page that hears it may send the next message at once
            self._busy.pop(turn.thread, None)
        turn.events.publish(kind, last=True, thread=turn.thread, **data)

    def _outcome(self, turn: ChatTurn, live: LiveAgent) -> tuple[str, dict[str, Any]]:
        """Run the turn; its last event: ("answer", the Turn's fields) or ("error", a message)."""
        config = {"configurable": {"thread_id": turn.thread}}
        try:
            with live.serving(turn):
                if turn.stopping:  # stopped while it waited for the model
                    raise TurnStopped
                result = run_turn(live.graph, self.store, turn.question, config)
        except TurnStopped:
            return "answer", {"answer": None, "status": "interrupted", "run_id": turn.run_id,
                              "error": "stopped before the answer"}  # fmt: skip
        except AgentDistillError as exc:  # a failed turn (endpoint down, ...) is recorded; the thread goes on
            return "error", {"message": str(exc), "run_id": turn.run_id}
        except Exception as exc:  # the worker's edge: the page must hear of it, and the log keeps the traceback
            log.exception("chat turn %s failed", turn.id)
            return "error", {"message": f"{type(exc).__name__}: {exc}", "run_id": turn.run_id}
        index = ThreadIndex(self.settings.threads_path)
        try:
            index.add_turn(turn.thread, turn.key.agent, turn.question)
        finally:
            index.close()
        return "answer", result.to_json()
