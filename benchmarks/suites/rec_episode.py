"""One simulated recommendation session end to end: user says, agent recommends, user reacts, up to T turns.

`run_episode` talks to any graph that honours recbot's output contract (`answer`, `status`, `run_id`,
`recommended`, `preference`, `clarification`) through its checkpointer, one thread per session, so each
turn is a separate recorded run that sees the earlier ones. `make_episode` wraps it (or a single-turn
request) as the runner's `Episode`: the runner then handles deadlines, errors, resume, and scores every
turn's run with the session's outcome.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agentdistill.agents.recbot_schema import Preference
from agentdistill.benchmarks.item_worker import Episode, Outcome
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.suites.rec_metrics import hit_at_k, parse_accuracy, violation_count
from agentdistill.benchmarks.suites.rec_sessions import RecSession, session_of
from agentdistill.benchmarks.suites.rec_users import LLMUser, RuleUser, SimulatedUser
from agentdistill.errors import AgentDistillError
from agentdistill.memory.catalog import Catalog, CatalogItem, CatalogItemNotFound, CatalogQuery
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import ChatModel

EPISODE_OPTIONS = ("user", "user_model", "persona", "max_turns")  # --option keys the simulator takes, not the agent
ANSWER_CHARS = 400  # of each reply kept in the results' transcript (the full text is in the trajectory)


class BadEpisodeOption(AgentDistillError):
    def __init__(self, key: str, value: object, expected: str) -> None:
        super().__init__(f"--option {key}={value!r}: expected {expected}.")


@dataclass(frozen=True)
class EpisodeSettings:
    """How sessions are simulated; from `bench run --option KEY=VALUE` (the rest goes to the agent)."""

    user: str = "rule"  # rule: deterministic templates; llm: an LLM rephrases the same content
    user_model: str | None = None  # model spec of the LLM user (default: the agent's own model)
    persona: str | None = None  # LLM user persona (default: one of rec_users.PERSONAS per session)
    max_turns: int = 5  # user messages per session
    k: int = 5  # the target counts only among the first k recommendations (shared with recbot's own `k`)

    def __post_init__(self) -> None:
        if self.user not in ("rule", "llm"):
            raise BadEpisodeOption("user", self.user, "rule or llm")
        if not isinstance(self.max_turns, int) or not 1 <= self.max_turns <= 20:
            raise BadEpisodeOption("max_turns", self.max_turns, "a whole number of turns from 1 to 20")
        if not isinstance(self.k, int) or self.k < 1:
            raise BadEpisodeOption("k", self.k, "a positive whole number of recommendations")


def split_options(options: Mapping[str, Any]) -> tuple[EpisodeSettings, dict[str, Any]]:
    """The simulator's settings and the options left for the agent (`k` goes to both)."""
    mine = {key: options[key] for key in EPISODE_OPTIONS if key in options}
    agent = {key: value for key, value in options.items() if key not in EPISODE_OPTIONS}
    return EpisodeSettings(**mine, k=options.get("k", 5)), agent


@dataclass(frozen=True)
class TurnRecord:
    """One user message and what the agent did with it."""

    turn: int  # 1-based
    user: str  # the user's message
    act: str  # what kind of message it was (rec_users.Utterance.act)
    run_id: str
    status: str
    answer: str
    recommended: tuple[str, ...]  # item ids, best first, at most k
    titles: tuple[str, ...]  # their titles ("?" for an id the catalog does not hold)
    hit: bool  # the target is among them
    violating: int  # of them, how many break the hidden constraints
    stated_violating: int  # ... and how many break what the user had said so far
    parse_accuracy: float  # agent's parsed preference vs what the user had said so far
    clarification: bool  # the agent asked instead of recommending
    steps: int  # model calls of this turn's run
    tool_calls: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float

    def run_metrics(self) -> dict[str, float]:
        """This turn's own figures, stored on its run beside the session's (data selection reads them)."""
        return {"turn_parse_accuracy": round(self.parse_accuracy, 4), "turn_hit": float(self.hit),
                "turn_stated_violating": float(self.stated_violating)}  # fmt: skip

    def brief(self) -> dict[str, Any]:
        """What the results line keeps of the turn (reports print it)."""
        return {
            "turn": self.turn, "user": self.user, "act": self.act, "recommended": list(self.titles), "hit": self.hit,
            "violating": self.violating, "parse_accuracy": round(self.parse_accuracy, 3),
            "clarification": self.clarification, "answer": self.answer[:ANSWER_CHARS],
        }  # fmt: skip


@dataclass(frozen=True)
class EpisodeResult:
    """A whole session: did the user get the target, how fast, and how well the agent kept to the wishes."""

    session_id: str
    target_id: str
    turns: tuple[TurnRecord, ...]
    max_turns: int
    user_tokens: int = 0  # the LLM user's own spend (0 for the rule user)
    status: str = "ok"  # the first non-ok turn status, else ok
    error: str | None = None
    hits: tuple[bool, ...] = field(init=False)  # hit@k per turn

    def __post_init__(self) -> None:
        object.__setattr__(self, "hits", tuple(t.hit for t in self.turns))

    @property
    def hit(self) -> bool:
        return any(self.hits)

    @property
    def hit_turn(self) -> int | None:
        return next((t.turn for t in self.turns if t.hit), None)

    @property
    def recommended(self) -> int:
        return sum(len(t.recommended) for t in self.turns)

    @property
    def violation_rate(self) -> float:
        return sum(t.violating for t in self.turns) / self.recommended if self.recommended else 0.0

    @property
    def stated_violation_rate(self) -> float:
        return sum(t.stated_violating for t in self.turns) / self.recommended if self.recommended else 0.0

    @property
    def parse_accuracy(self) -> float:
        return sum(t.parse_accuracy for t in self.turns) / len(self.turns) if self.turns else 0.0

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(t.run_id for t in self.turns)

    @property
    def tokens(self) -> int:
        return sum(t.prompt_tokens + t.completion_tokens for t in self.turns)

    @property
    def latency_s(self) -> float:
        return sum(t.latency_s for t in self.turns)

    def metrics(self) -> dict[str, float]:
        hit_turn = self.hit_turn
        out = {
            "hit": float(self.hit), "hit_turn": float(hit_turn or 0), "turns": float(len(self.turns)),
            "recommended": float(self.recommended), "violating": float(sum(t.violating for t in self.turns)),
            "stated_violating": float(sum(t.stated_violating for t in self.turns)),
            "violation_rate": self.violation_rate, "stated_violation_rate": self.stated_violation_rate,
            "parse_accuracy": self.parse_accuracy, "clarifications": float(sum(t.clarification for t in self.turns)),
            "answered": float(any(t.recommended or t.clarification for t in self.turns)),
            "user_tokens": float(self.user_tokens),
        }  # fmt: skip
        for t in range(1, self.max_turns + 1):  # hit by turn t: a session that ended on a hit stays a hit
            out[f"hit_by_t{t}"] = float(hit_turn is not None and hit_turn <= t)
        return out

    def outcome(self) -> Outcome:
        last = self.turns[-1] if self.turns else None
        return Outcome(
            answer=last.answer if last else None, status=self.status, correct=self.hit, metrics=self.metrics(),
            run_ids=self.run_ids, steps=sum(t.steps for t in self.turns),
            tool_calls=sum(t.tool_calls for t in self.turns),
            prompt_tokens=sum(t.prompt_tokens for t in self.turns),
            completion_tokens=sum(t.completion_tokens for t in self.turns), latency_s=self.latency_s,
            error=self.error, meta={"transcript": [t.brief() for t in self.turns],
                                    "run_metrics": {t.run_id: t.run_metrics() for t in self.turns}},
        )  # fmt: skip


def run_episode(
    graph: Any,
    store: TrajectoryStore,
    session: RecSession,
    user: SimulatedUser,
    catalog: Catalog,
    *,
    max_turns: int = 5,
    k: int = 5,
    thread_id: str,
) -> EpisodeResult:
    """Play one session on `graph` (built with a checkpointer) until the user accepts or `max_turns` pass."""
    dialogue = user.start(session)
    utterance = dialogue.opening()
    turns: list[TurnRecord] = []
    status, error = "ok", None
    for number in range(1, max_turns + 1):
        turn, items = _play_turn(graph, store, catalog, utterance.text, thread_id, k=k)
        record = _score(turn, items, number, utterance.act, utterance.stated, session, k)
        turns.append(record)
        if record.status != "ok":
            status, error = record.status, turn.get("error") or f"turn {number} ended with status {record.status}"
            break
        if record.hit or number == max_turns:
            break
        utterance = dialogue.react(items, answer=record.answer, clarification=record.clarification)
        if utterance.done:  # a user who leaves without a hit (the rule user only accepts hits, which end above)
            break
    user_tokens = getattr(dialogue, "prompt_tokens", 0) + getattr(dialogue, "completion_tokens", 0)
    return EpisodeResult(session.id, session.target_id, tuple(turns), max_turns, user_tokens, status, error)


def _play_turn(
    graph: Any, store: TrajectoryStore, catalog: Catalog, text: str, thread_id: str, *, k: int
) -> tuple[dict[str, Any], list[CatalogItem | None]]:
    """Ask the graph; return its output (plus run figures) and the recommended items (None: unknown id)."""
    started = time.perf_counter()
    out = graph.invoke({"question": text}, config={"configurable": {"thread_id": thread_id}})
    latency = time.perf_counter() - started
    run = store.get(out["run_id"])
    ids = [str(i) for i in (out.get("recommended") or [])][:k]
    figures = {
        "run_id": run.id, "status": out.get("status", run.status), "latency_s": latency, "steps": run.model_calls,
        "tool_calls": sum(1 for s in run.steps if s.kind == "tool"), "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens, "ids": ids, "question": text,
        "error": out.get("error") or (run.error.message if run.error else None),
    }  # fmt: skip
    return {**out, **figures}, [_lookup(catalog, i) for i in ids]


def _lookup(catalog: Catalog, item_id: str) -> CatalogItem | None:
    try:
        return catalog.get(item_id)
    except CatalogItemNotFound:  # the agent made up an id: counted as a violation, shown as "?"
        return None


def parsed_query(preference: Mapping[str, Any] | None) -> CatalogQuery:
    """The agent's preference as a catalog query; an absent or invalid one constrains nothing."""
    if not preference:
        return CatalogQuery()
    try:
        return Preference.model_validate(preference).full_query()
    except ValidationError:
        return CatalogQuery()


def _score(
    turn: Mapping[str, Any],
    items: Sequence[CatalogItem | None],
    number: int,
    act: str,
    stated: CatalogQuery,
    session: RecSession,
    k: int,
) -> TurnRecord:
    return TurnRecord(
        turn=number, user=turn["question"], act=act, run_id=turn["run_id"], status=turn["status"],
        answer=str(turn.get("answer") or ""), recommended=tuple(turn["ids"]),
        titles=tuple(item.title if item is not None else "?" for item in items),
        hit=hit_at_k(turn["ids"], session.target_id, k), violating=violation_count(session.hidden, items),
        stated_violating=violation_count(stated, items),
        parse_accuracy=parse_accuracy(stated, parsed_query(turn.get("preference"))),
        clarification=bool(turn.get("clarification")), steps=turn["steps"], tool_calls=turn["tool_calls"],
        prompt_tokens=turn["prompt_tokens"], completion_tokens=turn["completion_tokens"], latency_s=turn["latency_s"],
    )  # fmt: skip


def run_request(graph: Any, store: TrajectoryStore, item: Item, catalog: Catalog, *, k: int = 5) -> Outcome:
    """One real request, one turn: qualitative, so the score only says it was answered within its named genres."""
    turn, items = _play_turn(graph, store, catalog, item.question, item.id, k=k)
    hidden = CatalogQuery(**item.meta.get("hidden", {}))
    violating = violation_count(hidden, items)
    answered = bool(turn["ids"]) or bool(turn.get("clarification"))
    metrics = {
        "recommended": float(len(turn["ids"])), "violating": float(violating),
        "violation_rate": violating / len(turn["ids"]) if turn["ids"] else 0.0, "answered": float(answered),
        "clarifications": float(bool(turn.get("clarification"))),
    }  # fmt: skip
    titles = [i.title if i is not None else "?" for i in items]
    return Outcome(
        answer=str(turn.get("answer") or ""), status=turn["status"], correct=answered and not violating,
        metrics=metrics, run_ids=(turn["run_id"],), steps=turn["steps"], tool_calls=turn["tool_calls"],
        prompt_tokens=turn["prompt_tokens"], completion_tokens=turn["completion_tokens"], latency_s=turn["latency_s"],
        error=turn["error"], meta={"recommended_titles": titles, "notices": list(turn.get("notices") or [])},
    )  # fmt: skip


def make_user(settings: EpisodeSettings, catalog: Catalog, model: ChatModel | None = None) -> SimulatedUser:
    """The user the settings ask for; the LLM user needs `model`."""
    if settings.user == "rule":
        return RuleUser(catalog, k=settings.k)
    if model is None:
        raise BadEpisodeOption("user", "llm", "a model for the LLM user (--option user_model=SPEC)")
    return LLMUser(model, settings.persona, catalog=catalog, k=settings.k)


def make_episode(kind: str, catalog: Catalog, settings: EpisodeSettings, user: SimulatedUser | None = None) -> Episode:
    """The runner's episode for a suite's `episode` kind: "simulated" sessions or single-turn "requests"."""
    if kind == "requests":
        return lambda item, graph, store: run_request(graph, store, item, catalog, k=settings.k)
    if kind != "simulated":
        raise ValueError(f"unknown episode kind {kind!r}: simulated or requests")
    chosen = user or make_user(settings, catalog)

    def episode(item: Item, graph: Any, store: TrajectoryStore) -> Outcome:
        result = run_episode(graph, store, session_of(item), chosen, catalog, max_turns=settings.max_turns,
                             k=settings.k, thread_id=item.id)  # fmt: skip
        return result.outcome()

    return episode
