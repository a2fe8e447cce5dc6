"""The trajectory schema and the recorder every graph uses, so that every model call lands in its run.

A run is one question answered by one agent: ordered steps (model calls, tool calls, events), the final
answer, a status, and score fields that benchmarks fill in later. Distillation reads these records back;
nothing is ever parsed out of log text.
"""

from __future__ import annotations

import contextvars
import functools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback
from agentdistill.models.fallback import NodeModels, NodeRouter

SCHEMA_VERSION = 1
RunStatus = Literal["running", "ok", "max_steps", "error"]
StepKind = Literal["model", "tool", "event"]


@dataclass(frozen=True)
class StepError:
    """A typed failure: `kind` is a short machine-readable class (parse_error, unknown_tool, timeout, ...)."""

    kind: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass(kw_only=True)
class Step:
    """One model call, tool call or event of a run, in order."""

    run_id: str
    index: int
    kind: StepKind
    node: str  # graph node that made the step
    role: str = "policy"  # which model role: policy, parser, planner, decomposer, ... (one spec per role)
    model: str | None = None  # spec of the model that answered
    messages_in: list[Message] = field(default_factory=list)  # exactly what the model saw
    completion: str | None = None  # the (first) completion, stop sequences already cut
    samples: list[str] = field(default_factory=list)  # all completions when n > 1 (SAG keeps every sample)
    params: dict[str, Any] = field(default_factory=dict)  # temperature, n, stop, max_tokens of the call
    parsed: dict[str, Any] | None = None  # the action parsed from the completion, filled by the graph
    tool: str | None = None
    tool_args: dict[str, Any] | None = None
    observation: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: StepError | None = None
    data: dict[str, Any] = field(default_factory=dict)  # free-form event payload (e.g. LAG's sub-question chain)
    # Token-exact record of a model call (see token_record): tokenizer id, prompt ids, completion ids per sample.
    tokens: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: `asdict` deep-copies every message and was a quarter of the recorder's cost.
        data = {name: getattr(self, name) for name in _STEP_FIELDS}
        data["error"] = None if self.error is None else self.error.as_dict()
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Step:
        data = dict(raw)
        if data.get("error") is not None:
            data["error"] = StepError(**data["error"])
        return cls(**data)


_STEP_FIELDS = tuple(f.name for f in fields(Step))


@dataclass(kw_only=True)
class Run:
    """One question answered by one agent, with everything needed to score it and to learn from it."""

    id: str
    agent: str
    question: str
    models: dict[str, str] = field(default_factory=dict)  # role -> model spec
    status: RunStatus = "running"
    answer: str | None = None
    error: StepError | None = None
    score: float | None = None  # filled by benchmarks: 1.0 correct, 0.0 wrong
    metrics: dict[str, Any] = field(default_factory=dict)  # em, f1, ... from the benchmark metric
    suite: str | None = None
    item_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    schema_version: int = SCHEMA_VERSION
    steps: list[Step] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def model_calls(self) -> int:
        return sum(1 for s in self.steps if s.kind == "model")

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.created_at

    def to_dict(self) -> dict[str, Any]:
        # Not `asdict`: it would deep-copy every step only for the copies to be replaced below.
        data = {name: getattr(self, name) for name in _RUN_FIELDS}
        data["error"] = None if self.error is None else self.error.as_dict()
        data["steps"] = [step.to_dict() for step in self.steps]
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Run:
        data = dict(raw)
        data["steps"] = [Step.from_dict(s) for s in data.get("steps", [])]
        if data.get("error") is not None:
            data["error"] = StepError(**data["error"])
        return cls(**data)


_RUN_FIELDS = tuple(f.name for f in fields(Run))


def error_kind(exc: BaseException) -> str:
    """The `kind` recorded for an exception: its own `kind` attribute when it has one, else its class name."""
    return str(getattr(exc, "kind", None) or type(exc).__name__)


class TrajectorySink(Protocol):
    """Where a Recorder writes: memory's TrajectoryStore is one. Declared here so core never imports memory."""

    def start_run(self, run: Run) -> None: ...

    def append_step(self, step: Step) -> None: ...

    def finish_run(
        self, run_id: str, *, status: RunStatus, answer: str | None, error: StepError | None = None
    ) -> None: ...

    def annotate_last_model_step(
        self, run_id: str, *, parsed: Mapping[str, Any] | None, error: StepError | None
    ) -> None: ...


@dataclass(frozen=True)
class _Cursor:
    run_id: str
    node: str


class Recorder:
    """Records runs into a TrajectorySink (a TrajectoryStore). A graph wraps its model once and wraps each node once.

    The current run is carried in a context variable that `node()` sets from `state["run_id"]` for the
    duration of the node, so concurrent runs through one graph never mix their steps. With `store=None`
    nothing is written (a graph built without recording still calls the same code).
    """

    def __init__(self, store: TrajectorySink | None, *, agent: str, meta: Mapping[str, Any] | None = None) -> None:
        self.store = store
        self.agent = agent
        self.meta = dict(meta or {})
        self.roles: dict[str, str] = {}
        self._cursor: contextvars.ContextVar[_Cursor | None] = contextvars.ContextVar(
            f"recorder-{id(self)}", default=None
        )
        self._counters: dict[str, int] = {}

    # -- runs -----------------------------------------------------------------------------------------
    def start(self, question: str, *, meta: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Open a run and return its id; the graph keeps the id in its state."""
        run = Run(
            id=run_id or uuid.uuid4().hex,
            agent=self.agent,
            question=question,
            models=dict(self.roles),
            meta={**self.meta, **(meta or {})},
        )
        self._counters[run.id] = 0
        if self.store is not None:
            self.store.start_run(run)
        return run.id

    def finish(self, run_id: str, *, status: RunStatus, answer: str | None, error: StepError | None = None) -> None:
        self._counters.pop(run_id, None)
        if self.store is not None:
            self.store.finish_run(run_id, status=status, answer=answer, error=error)

    # -- wrapping ---------------------------------------------------------------------------------------
    def wrap(self, model: ChatModel, *, role: str = "policy") -> ChatModel:
        """Return a model whose every call is recorded as a step of the current run.

        A NodeModels answers each call of `role` with the model named for the calling node, else for the role.
        """
        if isinstance(model, NodeModels):
            own, nodes = model.choose(role), model.nodes(role)
            self.roles[role] = NodeModels(own, nodes).spec
            by_node = {name: RecordingModel(m, self, role) for name, m in nodes.items()}

            def calling() -> str | None:  # read per call, inside the node making it
                return getattr(self._cursor.get(), "node", None)

            return NodeRouter(RecordingModel(own, self, role), by_node, calling, spec=self.roles[role])
        self.roles[role] = model.spec
        return RecordingModel(model, self, role)

    def node(self, fn: Callable[[Any], Any], name: str | None = None) -> Callable[[Any], Any]:
        """Wrap a graph node: steps it records land in `state["run_id"]`; an exception ends the run as error."""
        node_name = name or fn.__name__

        @functools.wraps(fn)
        def wrapped(state: Any) -> Any:
            run_id = state.get("run_id") if isinstance(state, Mapping) else None
            token = self._cursor.set(_Cursor(run_id, node_name) if run_id else None)
            try:
                return fn(state)
            except BaseException as exc:  # Ctrl-C too: a run is never left "running" by an interrupted turn
                if run_id:
                    kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else error_kind(exc)
                    self.finish(run_id, status="error", answer=None, error=StepError(kind, str(exc) or kind))
                raise
            finally:
                self._cursor.reset(token)

        return wrapped

    # -- steps --------------------------------------------------------------------------------------------
    def _next_index(self, run_id: str) -> int:
        index = self._counters.get(run_id, 0)
        self._counters[run_id] = index + 1
        return index

    def record(self, **fields: Any) -> Step | None:
        """Append a step to the current run (no-op outside a recorded node). Returns the step written."""
        cursor = self._cursor.get()
        if cursor is None:
            return None
        step = Step(run_id=cursor.run_id, index=self._next_index(cursor.run_id), node=cursor.node, **fields)
        if self.store is not None:
            self.store.append_step(step)
        return step

    def tool(
        self, name: str, args: Mapping[str, Any] | None, observation: str, *, error: StepError | None = None
    ) -> None:
        """Record a tool call and what it returned to the model."""
        self.record(kind="tool", tool=name, tool_args=dict(args or {}), observation=observation, error=error)

    def event(self, name: str, data: Mapping[str, Any]) -> None:
        """Record a structured event (a plan, a sub-question chain, a vote) that is not a model or tool call."""
        self.record(kind="event", role=name, data=dict(data))

    def annotate_last(self, parsed: Mapping[str, Any] | None = None, error: StepError | None = None) -> None:
        """Attach the parsed action (or parse error) to the latest model step of the current run."""
        cursor = self._cursor.get()
        if cursor is None or self.store is None:
            return
        self.store.annotate_last_model_step(cursor.run_id, parsed=dict(parsed) if parsed else None, error=error)


class DelegateRecorder(Recorder):
    """A sub-agent's recorder: its graph records into the delegating graph's current run, not a run of its own.

    A hierarchical agent (a supervisor handing tasks to reused graphs) is one trajectory: each sub-graph's
    `start` opens no run but notes the task as a `delegate` event in the parent's run, its model calls are
    recorded there under roles prefixed with the sub-agent's name (e.g. `data.policy`), and its `finish` notes
    the result as a `delegate_result` event. Build the sub-graphs before the first run starts, so the parent run
    lists every role's model.
    """

    def __init__(self, parent: Recorder, name: str) -> None:
        super().__init__(parent.store, agent=parent.agent, meta=parent.meta)
        self.parent, self.name = parent, name
        self.roles = parent.roles  # shared: the parent's run lists the sub-agents' models too
        self._counters = parent._counters  # shared: one run, one sequence of step indices

    def start(self, question: str, *, meta: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        cursor = self.parent._cursor.get()
        if cursor is None:
            raise RuntimeError(f"sub-agent {self.name!r} was started outside a recorded node of its parent graph")
        self.parent.event("delegate", {"agent": self.name, "task": question})
        return cursor.run_id

    def finish(self, run_id: str, *, status: RunStatus, answer: str | None, error: StepError | None = None) -> None:
        data = {"agent": self.name, "status": status, "answer": answer}
        self.parent.event("delegate_result", {**data, "error": error.as_dict() if error else None})

    def wrap(self, model: ChatModel, *, role: str = "policy") -> ChatModel:
        return super().wrap(model, role=f"{self.name}.{role}")


def _in_langgraph_run() -> bool:
    """Whether this thread runs a LangGraph node (langgraph keeps the node's config in a context variable)."""
    try:
        from langgraph.config import get_config

        get_config()
    except (RuntimeError, ImportError):
        return False
    return True


class RecordingModel:
    """A ChatModel that records each call (prompt, completions, usage, latency, error) before returning it.

    Inside a LangGraph node a one-sample call goes through LangChain's chat-model machinery (callbacks,
    tracers), so `graph.stream(..., stream_mode="messages")` carries its tokens from every backend.
    """

    def __init__(self, inner: ChatModel, recorder: Recorder, role: str) -> None:
        self.inner = inner
        self.recorder = recorder
        self.role = role
        self.spec = inner.spec

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        params = {"stop": list(stop), "max_tokens": max_tokens, "temperature": temperature, "n": n, "seed": seed}
        started = time.perf_counter()
        try:
            if n == 1 and _in_langgraph_run():  # stream_mode="messages" and LangChain tracers see the call
                from agentdistill.models.langchain_adapter import call_through_langchain

                out = [call_through_langchain(self.inner, messages, stop=stop, max_tokens=max_tokens,
                                              temperature=temperature, seed=seed, on_token=on_token)]  # fmt: skip
            else:
                out = self.inner.generate(
                    messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed,
                    on_token=on_token,
                )  # fmt: skip
        except Exception as exc:
            self.recorder.record(
                kind="model",
                role=self.role,
                model=self.spec,
                messages_in=[dict(m) for m in messages],  # type: ignore[misc]
                params=params,
                latency_s=time.perf_counter() - started,
                error=StepError(error_kind(exc), str(exc)),
            )
            raise
        fallback = next((c.fallback for c in out if c.fallback), None)
        self.recorder.record(
            kind="model",
            role=self.role,
            model=(out[0].model if out and out[0].model else self.spec),
            messages_in=[dict(m) for m in messages],  # type: ignore[misc]
            completion=out[0].text if out else None,
            samples=[c.text for c in out] if n > 1 else [],
            params=params,
            prompt_tokens=out[0].usage.prompt_tokens if out else 0,
            completion_tokens=sum(c.usage.completion_tokens for c in out),
            latency_s=time.perf_counter() - started,
            tokens=token_record(out),
            data={"fallback": fallback} if fallback else {},
        )
        return out


def token_record(out: Sequence[Completion]) -> dict[str, Any] | None:
    """The token-exact part of a call's step: None unless every completion carries its sampled ids."""
    if not out or any(c.token_ids is None for c in out):
        return None
    return {
        "tokenizer": out[0].tokenizer,
        "prompt": None if out[0].prompt_token_ids is None else list(out[0].prompt_token_ids),
        "completions": [list(c.token_ids or ()) for c in out],
        "finish": [c.finish_reason for c in out],
        "logprobs": [c.logprob for c in out],
    }
