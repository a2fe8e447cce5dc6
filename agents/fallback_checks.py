"""Which roles and nodes of each agent a student can take over, and how its replies there are checked.

`fallback_check(agent, name)` is the `check` of a FallbackModel (agentdistill/models/fallback.py): the agent's
own parser for that call, returning a canonical key of the parsed action (samples agree when their keys are
equal) or None when the agent could not use the reply. `node_models` builds the NodeModels that `build_agent`
takes as its model, so e.g. only LAG's decomposer (`decompose`) or only recbot's parser (`parser`) is a student.
"""

from __future__ import annotations

import ast
import difflib
import json
from collections.abc import Hashable, Mapping
from typing import Any

from agentdistill.agents.codeact_parse import CodeAction, parse_code_action
from agentdistill.agents.common import final_answer_text, has_answer_marker
from agentdistill.agents.lag_plan import PlanError, parse_decomposition, parse_short_answer, topological_order
from agentdistill.agents.materials import parse_decision
from agentdistill.agents.react_parse import FinalAnswer, ReactAction, parse_react
from agentdistill.agents.recbot_plan import PlanError as RecPlanError
from agentdistill.agents.recbot_plan import parse_plan
from agentdistill.agents.recbot_schema import Preference, PreferenceParseError, first_json_object, parse_preference
from agentdistill.errors import AgentDistillError
from agentdistill.memory.catalog import Vocabulary
from agentdistill.models.base import ChatModel
from agentdistill.models.fallback import Check, FallbackModel, FallbackPolicy, NodeModels

_NO_VOCABULARY = Vocabulary(types=(), genres=(), countries=(), ratings=())


def _words(text: str) -> str | None:
    """Whitespace-collapsed, lower-cased text; None when empty (a reply with nothing in it)."""
    return " ".join(text.split()).lower() or None


def text_key(text: str) -> Hashable | None:
    """Free text (a responder's sentence, a first thought, one of LAG's mixed `policy` calls): any non-empty reply."""
    return _words(text)


def marked_answer_key(text: str) -> Hashable | None:
    """cot, reader, LAG's read: the answer after "Final Answer:" (or in \\boxed{}). Stricter than those agents,
    which take the last line of an unmarked reply: a reply that does not mark its answer is the small-model fault
    the teacher should fix."""
    return _words(final_answer_text(text)) if has_answer_marker(text) else None


def short_answer_key(text: str) -> Hashable | None:
    """LAG's resolve (sub-answers and rewrites) and synthesize: the first line, prefix and quotes dropped."""
    return _words(parse_short_answer(text))


def react_key(text: str) -> Hashable | None:
    """A ReAct turn: (action, tool, arguments) or (final, answer); None when react would report a format error."""
    parsed = parse_react(text)
    if isinstance(parsed, FinalAnswer):
        return ("final", _words(parsed.text))
    if isinstance(parsed, ReactAction):
        args = parsed.args if isinstance(parsed.args, str) else json.dumps(parsed.args, sort_keys=True, default=str)
        return ("action", parsed.tool.lower(), " ".join(args.split()))
    return None


def code_key(text: str) -> Hashable | None:
    """A CodeAct step: its code with layout and comments normalised (ast.unparse); a final_answer(...) call
    without a fence counts, as codeact runs it. Code with a syntax error parses here, as codeact runs it too."""
    parsed = parse_code_action(text)
    if not isinstance(parsed, CodeAction):
        return None
    try:
        return ("code", ast.unparse(ast.parse(parsed.code)))
    except SyntaxError:
        return ("code", " ".join(parsed.code.split()))


def decomposition_key(text: str) -> Hashable | None:
    """LAG's decomposer: the validated DAG in dependency order, as (id, question, depends_on) triples."""
    try:
        plan = parse_decomposition(text)
    except PlanError:
        return None
    return tuple((s.id, _words(s.question), tuple(s.depends_on)) for s in topological_order(plan.subquestions))


def preference_key(text: str) -> Hashable | None:
    """recbot's parser: a JSON object that validates as a Preference. The real parse also needs the previous turn's
    preference and the catalog's vocabulary, which a check of one reply does not see; this validates the shape
    and value ranges over an empty preference, and keys on the object's known fields as written."""
    try:
        raw = first_json_object(text)
        parse_preference(text, Preference(), _NO_VOCABULARY)
    except PreferenceParseError:
        return None
    return json.dumps({k: v for k, v in raw.items() if k in Preference.model_fields}, sort_keys=True, default=str)


def plan_key(text: str) -> Hashable | None:
    """recbot's planner: a valid tool chain (any of the catalog steps), as its JSON."""
    try:
        plan = parse_plan(text)
    except RecPlanError:
        return None
    return json.dumps([s.model_dump() for s in plan.steps], sort_keys=True, default=str)


def decision_key(text: str) -> Hashable | None:
    """The materials supervisor: (delegate to data | calc, task) or (final, answer); None for a format fault."""
    kind, said = parse_decision(text)
    return None if kind == "fault" else (kind, _words(said))


# agent -> {role or node name: check}. Roles are what graphs pass to Recorder.wrap; nodes are graph node names
# whose calls a student can take (materials' step and think are its data and calc assistants' nodes).
CHECKS: Mapping[str, Mapping[str, Check]] = {
    "react": {"policy": react_key, "answer": text_key, "step": react_key},
    "codeact": {"policy": code_key, "first_thought": text_key, "think": code_key, "ftp": text_key},
    "lag": {
        "policy": text_key,
        "decompose": decomposition_key,
        "resolve": short_answer_key,
        "synthesize": short_answer_key,
        "read": marked_answer_key,
    },
    "recbot": {
        "parser": preference_key,
        "planner": plan_key,
        "responder": text_key,
        "parse": preference_key,
        "plan": plan_key,
        "respond": text_key,
        "clarify": text_key,
    },
    "cot": {"policy": marked_answer_key, "call": marked_answer_key},
    "reader": {"policy": marked_answer_key, "read": marked_answer_key},
    "materials": {
        "supervisor": decision_key,
        "data.policy": react_key,
        "data.answer": text_key,
        "calc.policy": code_key,
        "decide": decision_key,
        "step": react_key,
        "think": code_key,
    },
}


# agent -> the names in CHECKS that are model roles (Recorder.wrap's `role`); the others are graph nodes.
ROLES: Mapping[str, frozenset[str]] = {
    "react": frozenset({"policy", "answer"}),
    "codeact": frozenset({"policy", "first_thought"}),
    "lag": frozenset({"policy"}),
    "recbot": frozenset({"parser", "planner", "responder"}),
    "cot": frozenset({"policy"}),
    "reader": frozenset({"policy"}),
    "materials": frozenset({"supervisor", "data.policy", "data.answer", "calc.policy"}),
}


class UnknownNodeName(AgentDistillError):
    """A --node-model name that is neither a model role nor a model-calling node of the agent."""

    def __init__(self, agent: str, name: str, known: list[str]) -> None:
        guess = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {guess[0]!r}?" if guess else ""
        super().__init__(f"the {agent} agent has no model role or node {name!r}: name one of {', '.join(known)}."
                         f"{hint}")  # fmt: skip
        self.agent, self.name = agent, name


def model_names(agent: str) -> list[str]:
    """The role and node names of `agent` that a node model can be given for, sorted."""
    return sorted(CHECKS.get(agent, {}))


def fallback_check(agent: str, name: str) -> Check:
    """The check of replies at role or node `name` of `agent`; raises UnknownNodeName naming the valid ones."""
    checks = CHECKS.get(agent, {})
    if name not in checks:
        raise UnknownNodeName(agent, name, model_names(agent))
    return checks[name]


def node_models(
    agent: str, teacher: ChatModel, students: Mapping[str, ChatModel], *, policy: FallbackPolicy | None
) -> NodeModels:
    """`teacher` for every call but those of the named roles/nodes, which `students` answer; with a `policy`,
    each student falls back to the teacher as it says. Unknown names fail before any model is called."""
    by_name: dict[str, Any] = {}
    for name, student in students.items():
        check = fallback_check(agent, name)
        by_name[name] = FallbackModel(student, teacher, check, policy) if policy is not None else student
    return NodeModels(teacher, by_name, roles=ROLES.get(agent, frozenset()))
