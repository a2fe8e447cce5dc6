"""recbot's plan: which catalog steps run, in what order, with what arguments, and how they run.

The planner model writes `{"steps": [{"tool": "filter", "args": {...}}, ...]}`. `parse_plan` validates it
before anything runs (known tool, valid arguments, a candidate source before `rank`, `explain` last);
`execute_plan` runs it over the catalog. The hard constraints, the excluded ids (titles already shown,
titles the user named as "like X") and the type are enforced on every path, whatever the plan says: the
plan chooses how to search, never what may be recommended. When nothing matches, `execute_plan` relaxes
soft constraints one at a time, then hard ones other than type and exclusions, and reports which.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentdistill.agents.common import json_values
from agentdistill.agents.recbot_schema import LIST_FIELDS, NUMBER_FIELDS, Preference
from agentdistill.errors import AgentDistillError
from agentdistill.memory.catalog import Catalog, CatalogItem, CatalogQuery, explain, rank

STEP_TOOLS = ("filter", "retrieve", "rank", "explain")
SOURCES = ("filter", "retrieve")  # steps that produce candidates; rank needs one before it
MAX_STEPS = 4  # one of each tool: a longer plan repeats itself
# Relaxed first to last: the narrowest wishes go first, the genre (what the title *is*) last.
RELAX_ORDER = (
    "people",
    "ratings",
    "countries",
    "seasons_max",
    "duration_min",
    "duration_max",
    "year_min",
    "year_max",
    "genres",
)
STEP_DOCS = {
    "filter": "filter(soft: bool = true): keep titles meeting the hard constraints and, if soft, the wishes too",
    "retrieve": 'retrieve(text: str = "", k: int = 30): the k titles closest in meaning to text (default: the vibe)',
    "rank": "rank(diversity: float = 0.3): order candidates by relevance and wish fit; mix genres by diversity",
    "explain": "explain(): say which wishes each pick meets and misses (always last)",
}


class PlanError(AgentDistillError):
    """The planner's plan is unusable; the message is written for the model, which gets to retry."""


class FilterArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    soft: bool = True  # apply the soft wishes as filters too (relaxed one at a time when nothing matches)


class RetrieveArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = ""  # what to search for by meaning; "" = the preference's vibe, similar titles and genres
    k: int = Field(default=30, ge=1, le=200)  # candidates kept for ranking


class RankArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    diversity: float = Field(default=0.3, ge=0.0, le=1.0)  # 0: by score only; 1: spread over genres
    k: int | None = Field(default=None, ge=1, le=50)  # picks wanted; never more than the graph's k


class ExplainArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


ARGS: dict[str, type[BaseModel]] = {
    "filter": FilterArgs,
    "retrieve": RetrieveArgs,
    "rank": RankArgs,
    "explain": ExplainArgs,
}


class PlanStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tool: Literal["filter", "retrieve", "rank", "explain"]
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _tolerate(cls, raw: Any) -> Any:
        """A bare "rank" is a step without arguments; `arguments`/`params` mean `args`."""
        if isinstance(raw, str):
            return {"tool": raw}
        if isinstance(raw, dict):
            data = dict(raw)
            for alias in ("arguments", "params", "parameters"):
                if "args" not in data and alias in data:
                    data["args"] = data.pop(alias)
            if data.get("args") is None:
                data["args"] = {}
            if isinstance(data.get("tool"), str):
                data["tool"] = data["tool"].strip().lower()
            return data
        return raw

    @model_validator(mode="after")
    def _args_valid(self) -> PlanStep:
        ARGS[self.tool].model_validate(self.args)  # raises with the field and what is wrong
        return self

    def parsed_args(self) -> Any:
        return ARGS[self.tool].model_validate(self.args)


class Plan(BaseModel):
    """A validated tool chain: a candidate source first, rank after one, explain (if any) last."""

    model_config = ConfigDict(frozen=True)

    steps: list[PlanStep] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _ordered(self) -> Plan:
        tools = [s.tool for s in self.steps]
        repeated = sorted({t for t in tools if tools.count(t) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} appears more than once: use each tool at most once")
        if tools[0] not in SOURCES:
            raise ValueError(f"the plan starts with {tools[0]}: start with filter or retrieve to get candidates")
        if "explain" in tools and tools[-1] != "explain":
            raise ValueError("explain must be the last step")
        return self


def default_plan() -> Plan:
    """The plan used when the planner's fails twice: filter, retrieve among the result, rank, explain."""
    steps = [{"tool": "filter"}, {"tool": "retrieve"}, {"tool": "rank"}, {"tool": "explain"}]
    return Plan.model_validate({"steps": steps})


def parse_plan(text: str, allowed: Collection[str] = STEP_TOOLS) -> Plan:
    """The plan in the planner's `text` (a JSON object, fenced or bare); PlanError says what to fix."""
    raw = _first_json_value(text)
    if isinstance(raw, list):  # a bare list of steps is a plan too
        raw = {"steps": raw}
    if raw is None:
        raise PlanError(f"no JSON plan found: reply with one JSON object like {example_plan()}")
    if "steps" not in raw and isinstance(raw.get("plan"), list):
        raw = {"steps": raw["plan"]}
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise PlanError(f"invalid plan: {problems}") from exc
    unknown = [s.tool for s in plan.steps if s.tool not in allowed]
    if unknown:
        raise PlanError(f"unknown tool {unknown[0]!r}: use only {', '.join(t for t in STEP_TOOLS if t in allowed)}")
    return plan


def _first_json_value(text: str) -> dict[str, Any] | list[Any] | None:
    """The first JSON object or list in `text` (code fences first); None when there is none."""
    return next((v for v in json_values(text) if isinstance(v, dict | list)), None)


def example_plan() -> str:
    return json.dumps({"steps": [s.model_dump() for s in default_plan().steps]})


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"] if p != "args" or len(error["loc"]) == 1) or "plan"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where != "plan" else message


@dataclass(frozen=True)
class Pick:
    """One recommendation with the reasons the responder cites."""

    id: str
    summary: str  # CatalogItem.summary(): title, type, year, length, genres, rating
    why: str  # explain(): which wishes it meets and which it misses

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Execution:
    picks: list[Pick]  # best first, at most k
    relaxed: list[str]  # constraints dropped from the filter because nothing matched, in order
    considered: int  # candidates that reached ranking


StepLog = Callable[[str, dict[str, Any], str], None]  # (tool, args, observation) for the trajectory


def execute_plan(
    plan: Plan,
    preference: Preference,
    catalog: Catalog,
    *,
    question: str,
    exclude_ids: Collection[str] = (),
    k: int = 5,
    log: StepLog | None = None,
) -> Execution:
    """Run `plan`; while it finds nothing, drop one more constraint from the filter and run it again."""
    anchors = [item for title in preference.similar_to if (item := catalog.find_title(title)) is not None]
    excluded = tuple(dict.fromkeys([*exclude_ids, *(a.id for a in anchors)]))
    text = retrieval_text(preference, anchors, question)
    dropped: list[str] = []
    relaxable = _relaxable(preference, plan)
    while True:
        picks, considered = _run_once(plan, preference, catalog, excluded, dropped, text, k, log or _no_log)
        if picks or not relaxable:
            return Execution(picks, dropped, considered)
        dropped.append(relaxable.pop(0))


def retrieval_text(preference: Preference, anchors: Sequence[CatalogItem], question: str) -> str:
    """What semantic retrieval searches for: the vibe, the liked titles' descriptions, the genres."""
    parts = [preference.vibe, *(a.description for a in anchors), ", ".join(preference.genres)]
    text = " ".join(p for p in parts if p.strip())
    return text or question


def _relaxable(preference: Preference, plan: Plan) -> list[str]:
    """Filter fields that may be dropped, soft before hard; type and exclusions are never dropped."""
    filters = {s.tool: s.parsed_args() for s in plan.steps}.get("filter")
    soft_filters = filters is not None and filters.soft
    set_fields = [f for f in RELAX_ORDER if getattr(preference, f) not in (None, [])]
    soft = [f for f in set_fields if f not in preference.hard] if soft_filters else []
    hard = [f for f in set_fields if f in preference.hard]
    return soft + hard


def filter_query(
    preference: Preference, *, soft: bool, dropped: Collection[str], exclude_ids: Sequence[str]
) -> CatalogQuery:
    """The SQL filter: hard constraints (and soft wishes if asked), less the dropped fields."""
    fields = set(preference.hard) | ({"type", *LIST_FIELDS, *NUMBER_FIELDS} if soft else set())
    kept = preference.model_copy(update={"hard": [f for f in fields if f not in dropped]})
    return dataclasses.replace(kept.hard_query(), exclude_ids=tuple(exclude_ids))


def _run_once(
    plan: Plan,
    preference: Preference,
    catalog: Catalog,
    excluded: Sequence[str],
    dropped: Collection[str],
    text: str,
    k: int,
    log: StepLog,
) -> tuple[list[Pick], int]:
    # The universe is always hard-filtered, so a plan that only retrieves cannot surface an excluded title.
    universe = filter_query(preference, soft=False, dropped=dropped, exclude_ids=excluded)
    candidates: list[CatalogItem] | None = None
    ranked: list[CatalogItem] | None = None
    why: dict[str, str] = {}
    for step in plan.steps:
        args = step.parsed_args()
        if step.tool == "filter":
            query = filter_query(preference, soft=args.soft, dropped=dropped, exclude_ids=excluded)
            candidates = catalog.filter(query)
            log("filter", step.args, f"{len(candidates)} titles match {_query_text(query)}")
        elif step.tool == "retrieve":
            if candidates is None:
                candidates = catalog.filter(universe)
            among = [c.id for c in candidates]
            hits = catalog.retrieve(args.text or text, k=args.k, among=among) if among else []
            candidates = [item for item, _ in hits]
            log("retrieve", step.args, _listing(candidates, f"{len(candidates)} closest to {args.text or text!r}"))
        elif step.tool == "rank":
            wanted = min(k, args.k or k)
            scored = rank(
                catalog, candidates or [], text=text, soft=preference.soft_query(), k=wanted, diversity=args.diversity
            )
            ranked = [r.item for r in scored]
            log("rank", step.args, _listing(ranked, f"top {len(ranked)}"))
        else:
            top = (ranked if ranked is not None else candidates or [])[:k]
            why = {item.id: explain(item, preference.hard_query(), preference.soft_query(), text) for item in top}
            log(
                "explain", step.args, "\n".join(f"{item.title}: {why[item.id]}" for item in top) or "nothing to explain"
            )
    top = (ranked if ranked is not None else candidates or [])[:k]
    top = [item for item in top if not universe.violations(item)]  # a guard on our own plan execution
    if top and not why:
        why = {item.id: explain(item, preference.hard_query(), preference.soft_query(), text) for item in top}
    return [Pick(item.id, item.summary(), _reasons(item, why[item.id])) for item in top], len(candidates or [])


def _reasons(item: CatalogItem, explanation: str) -> str:
    """explain() opens with the summary, which the pick already carries."""
    return explanation.removeprefix(item.summary()).removeprefix(".").strip()


def _no_log(tool: str, args: dict[str, Any], observation: str) -> None:
    del tool, args, observation


def _query_text(query: CatalogQuery) -> str:
    shown = {f.name: v for f in dataclasses.fields(query) if (v := getattr(query, f.name)) not in ((), None)}
    shown.pop("exclude_ids", None)
    return json.dumps(shown, ensure_ascii=False) if shown else "(no constraints)"


def _listing(items: Sequence[CatalogItem], head: str, limit: int = 5) -> str:
    lines = [f"{head}:"] + [f"- {item.summary()}" for item in items[:limit]]
    return "\n".join(lines + ([f"... and {len(items) - limit} more"] if len(items) > limit else []))
