"""LAG's plan and everything LAG parses out of model text, kept apart from the graph so it is unit-testable.

A decomposition is a list of sub-questions with explicit dependencies. The model writes it as JSON; this
module turns that text into a validated DAG (unique ids, no dangling references, no cycles, 1..6 items),
orders it so every sub-question comes after the ones it needs, and substitutes earlier answers into the
`#q1` / `{q1}` placeholders. Small models wrap JSON in code fences and prose, so parsing is tolerant about
where the JSON sits but strict about what it says: a wrong plan is sent back to the model with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentdistill.agents.common import json_values
from agentdistill.errors import AgentDistillError

MAX_SUBQUESTIONS = 6  # more hops than MuSiQue's 4 is a sign the model is rambling, not reasoning
UNANSWERABLE = "UNANSWERABLE"  # what the answerer writes when the passages do not support an answer

_ID = re.compile(r"q[1-9]\d*")
_PLACEHOLDER = re.compile(r"#(q[1-9]\d*)(?!\w)|\{(q[1-9]\d*)\}")
_NO_ANSWER = ("unanswerable", "insufficient information", "not enough information", "cannot be determined")
_ANSWER_PREFIX = re.compile(r"^(?:final answer|answer|rewritten question|question)\s*:\s*", re.IGNORECASE)
_SHAPE = 'reply with one JSON object like {"subquestions": [{"id": "q1", "question": "...", "depends_on": []}]}'
_PASSAGE_LINE = re.compile(r"^\[(?P<ref>[^\]\n]{1,80})\]\s*(?:(?P<title>[^:\n]{1,200}):)?", re.MULTILINE)


class PlanError(AgentDistillError):
    """The model's decomposition is unusable; the message is written for the model, which gets to retry."""


class SubQuestion(BaseModel):
    """One atomic question; `depends_on` names the earlier sub-questions whose answers it needs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str  # q1, q2, ...: the form placeholders (#q1, {q1}) refer to
    question: str  # may contain placeholders for the answers it depends on
    depends_on: list[str] = Field(default_factory=list)  # ids; placeholders in `question` are added here

    @model_validator(mode="before")
    @classmethod
    def _tolerate(cls, raw: Any) -> Any:
        """Accept what small models write (1 for "q1", a single string for a list) and add placeholder refs."""
        if not isinstance(raw, Mapping):
            return raw
        data = dict(raw)
        data["id"] = _normalise_id(data.get("id"))
        deps = data.get("depends_on")
        deps = [] if deps is None else [deps] if isinstance(deps, str | int) else deps
        if isinstance(deps, list):
            deps = [_normalise_id(d) for d in deps]
            if isinstance(data.get("question"), str):
                deps += [ref for ref in placeholders(data["question"]) if ref not in deps]
            data["depends_on"] = list(dict.fromkeys(deps))
        return data

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"id {value!r} must be q1, q2, q3, ... in order")
        return value

    @field_validator("question")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the sub-question text is empty")
        return value.strip()


class Decomposition(BaseModel):
    """A validated plan: 1..6 sub-questions whose dependencies form a DAG over their own ids."""

    model_config = ConfigDict(frozen=True)

    subquestions: list[SubQuestion] = Field(min_length=1, max_length=MAX_SUBQUESTIONS)

    @model_validator(mode="after")
    def _is_a_dag(self) -> Decomposition:
        ids = [s.id for s in self.subquestions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate ids {', '.join(duplicates)}: give every sub-question its own id")
        for sub in self.subquestions:
            if sub.id in sub.depends_on:
                raise ValueError(f"{sub.id} depends on itself: it can only use answers of other sub-questions")
            dangling = [d for d in sub.depends_on if d not in ids]
            if dangling:
                raise ValueError(
                    f"{sub.id} depends on {', '.join(dangling)}, which is not a sub-question (ids: {', '.join(ids)})"
                )
        topological_order(self.subquestions)  # raises on a cycle
        return self


def _normalise_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"q{value}"
    if isinstance(value, str):
        text = value.strip().lstrip("#").strip("{}").lower()
        return f"q{text}" if text.isdigit() else text
    return value


def topological_order(subquestions: Sequence[SubQuestion]) -> list[SubQuestion]:
    """Dependencies first; among sub-questions that are ready, the model's own order (stable, deterministic).

    Raises ValueError naming the sub-questions on a cycle, for the model to fix.
    """
    pending = list(subquestions)
    done: set[str] = set()
    ordered: list[SubQuestion] = []
    while pending:
        ready = next((s for s in pending if all(d in done for d in s.depends_on)), None)
        if ready is None:
            stuck = ", ".join(f"{s.id} -> {'/'.join(s.depends_on)}" for s in pending)
            raise ValueError(f"the dependencies form a cycle ({stuck}): each sub-question may only use earlier ones")
        pending.remove(ready)
        done.add(ready.id)
        ordered.append(ready)
    return ordered


def parse_decomposition(text: str) -> Decomposition:
    """The plan in `text` (JSON, possibly fenced or after prose), or PlanError saying what to fix."""
    data = _first_json(text)
    if isinstance(data, list):
        data = {"subquestions": data}
    try:
        return Decomposition.model_validate(data)
    except ValidationError as exc:
        raise PlanError(_describe(exc)) from None


def _first_json(text: str) -> Any:
    """The first JSON value in `text` that looks like a plan, preferring the inside of a code fence.

    A plan is a list or an object with a sub-question list; other objects (a lone sub-question inside a
    plan that was cut off) are skipped, so a truncated reply is reported as truncated, not as a wrong shape.
    """
    first_error: str | None = None
    other_keys: list[str] | None = None
    for value in json_values(text):
        if isinstance(value, json.JSONDecodeError):
            first_error = first_error or f"{value.msg} at character {value.pos}"
            continue
        if isinstance(value, list) and value:
            return value
        if isinstance(value, dict):
            for key in ("subquestions", "sub_questions", "questions", "steps"):
                if key in value:
                    return {"subquestions": value[key]}
            other_keys = other_keys if other_keys is not None else sorted(map(str, value))
    if first_error is not None:
        raise PlanError(f"the JSON is malformed or cut off ({first_error}); {_SHAPE}")
    if other_keys is not None:
        raise PlanError(f"the JSON object has no 'subquestions' list (keys: {', '.join(other_keys)}); {_SHAPE}")
    raise PlanError(f"no JSON found; {_SHAPE}")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def placeholders(text: str) -> list[str]:
    """Ids referenced as #q1 or {q1} in `text`, in order of first use."""
    refs = [m.group(1) or m.group(2) for m in _PLACEHOLDER.finditer(text)]
    return list(dict.fromkeys(refs))


def substitute(text: str, answers: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace placeholders whose id has an answer; return the new text and the ids substituted.

    Deterministic, so a dependency costs no model call when the model wrote its placeholder.
    """
    used: list[str] = []

    def fill(match: re.Match[str]) -> str:
        ref = match.group(1) or match.group(2)
        if ref not in answers:
            return match.group(0)
        used.append(ref)
        return answers[ref]

    return _PLACEHOLDER.sub(fill, text), list(dict.fromkeys(used))


def parse_short_answer(text: str) -> str:
    """The first non-empty line without an "Answer:" prefix, quotes or a lone trailing period ("" if none)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _ANSWER_PREFIX.sub("", line).strip().strip("\"'`*").strip()
    if line.endswith(".") and line.count(".") == 1:
        line = line[:-1].rstrip()
    return line


def is_unanswerable(answer: str) -> bool:
    """True for an empty answer or one saying the evidence is missing: the terminator's test."""
    lowered = answer.strip().lower()
    return not lowered or any(marker in lowered for marker in _NO_ANSWER)


def passage_refs(observation: str) -> list[str]:
    """Ids of the passages in a search observation: the title of each `[n] Title: text` line, else the `[n]`."""
    refs = [(m.group("title") or m.group("ref")).strip() for m in _PASSAGE_LINE.finditer(observation)]
    return list(dict.fromkeys(r for r in refs if r))


def render_history(history: Sequence[Sequence[str]]) -> str:
    """Earlier turns for the decomposition prompt, so a follow-up ("and his wife?") can be made explicit."""
    if not history:
        return ""
    turns = "\n".join(f"Q: {q}\nA: {a}" for q, a in history)
    return f"\nEarlier turns of this conversation (use them to resolve words like 'he' or 'it'):\n{turns}\n"


def render_chain(chain: Sequence[Mapping[str, Any]]) -> str:
    """The resolved chain for the synthesis prompt: one `id: question -> answer` line per sub-question."""
    return "\n".join(f"{e['id']}: {e['query']} -> {e['answer']}" for e in chain)
