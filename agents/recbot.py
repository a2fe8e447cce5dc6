"""recbot: a parser/planner recommender over an item catalog (RecBot's parser and planner, InteRecAgent's tools).

Each turn: the parser model rewrites the structured preference from the user's message (and the titles
shown last turn); contradictory wishes get a clarification question and no recommendations; otherwise
the planner model writes a tool chain (agents/recbot_plan.py validates it, retries once, then falls back
to the default chain), the executor runs it over the catalog, relaxing constraints if nothing matches,
and the responder introduces the picks. The list of picks and their reasons is written by code, from
`explain()`, so a small model cannot cite a title that was not recommended. The three model roles
(parser, planner, responder) are recorded separately, so each can be distilled.
"""
# over 200 lines: parser, planner and responder share one closure; schema and plans: recbot_schema, recbot_plan

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.common import Status, check_question, load_prompt
from agentdistill.agents.recbot_plan import (
    STEP_DOCS,
    STEP_TOOLS,
    PlanError,
    default_plan,
    execute_plan,
    parse_plan,
)
from agentdistill.agents.recbot_schema import Preference, PreferenceParseError, parse_preference
from agentdistill.errors import ConfigError
from agentdistill.memory.catalog import Catalog, CatalogItemNotFound
from agentdistill.models.base import ChatModel, Message, assistant, user
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder, StepError

JSON_STOP = ["\n\n", "\nUser:", "\nCurrent preference:", "\nPreference:"]  # one JSON line; small models go on
TEXT_STOP = ["\n\n", "\n1."]  # the responder writes a sentence or two, never the list itself
RETRY = "That reply is not usable: {error}\nReply again with the corrected JSON object only."
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
GENRES_SHOWN = 60  # vocabulary names listed in the parser prompt; the parser maps other spellings itself


class RecbotState(TypedDict, total=False):
    question: str  # this turn's user message (the graph's input)
    run_id: str  # the trajectory run recording this turn
    answer: str | None  # the reply: the responder's words, then the picks and their reasons
    status: Status
    preference: dict[str, Any]  # Preference.model_dump(); carried across turns by the checkpointer
    shown: list[str]  # ids recommended in earlier turns: never recommended again
    recommended: list[str]  # this turn's picks, best first
    picks: list[dict[str, str]]  # Pick.to_dict() of each recommendation: id, summary, why
    relaxed: list[str]  # constraints dropped because nothing matched them all
    notices: list[str]  # what the parser ignored or revised, what was relaxed
    clarification: bool  # this turn asks the user to resolve a contradiction instead of recommending
    plan: list[dict[str, Any]]  # the validated steps that ran
    history: list[list[str]]  # [message, answer] of earlier turns


def build_recbot_graph(
    model: ChatModel,
    tools: Sequence[Tool],
    *,
    catalog: Catalog,
    checkpointer: BaseCheckpointSaver | None = None,
    recorder: Recorder | None = None,
    prompts_dir: Path | None = None,
    k: int = 5,
    max_retries: int = 1,
    planner: bool = True,
    responder: bool = True,
) -> CompiledStateGraph:
    """Teacher or student, the graph is the same; `tools` names the steps the planner may use.

    `planner=False` runs the default tool chain and `responder=False` writes the reply from code, so each
    turn makes one model call (the parser's): a parser-only run to collect or evaluate parses, 3x cheaper.

    With a checkpointer, each `invoke({"question": q}, config={"configurable": {"thread_id": t}})` is a
    new turn (a new recorded run) that starts from the thread's preference and shown titles.
    """
    for name, value, low in (("k", k, 1), ("max_retries", max_retries, 0)):
        if value < low:
            raise ConfigError(name, value, f"an integer >= {low}")
    for name, flag in (("planner", planner), ("responder", responder)):
        if not isinstance(flag, bool):
            raise ConfigError(name, flag, "true or false")
    allowed = [t for t in STEP_TOOLS if t in {tool.name for tool in tools}]
    if not allowed or not {"filter", "retrieve"} & set(allowed):
        raise ConfigError("tools", sorted(t.name for t in tools), "catalog tools including filter or retrieve")
    recorder = recorder or Recorder(None, agent="recbot")
    roles = {role: recorder.wrap(model, role=role) for role in ("parser", "planner", "responder")}
    prompts = {
        n: load_prompt(f"recbot_{n}", prompts_dir).strip() for n in ("parser", "planner", "responder", "clarify")
    }
    vocabulary = catalog.vocabulary()
    tool_docs = "\n".join(f"- {STEP_DOCS[t]}" for t in allowed)

    def ask(role: str, messages: list[Message], stop: list[str], max_tokens: int) -> str:
        [completion] = roles[role].generate(messages, stop=stop, max_tokens=max_tokens, temperature=0.0)
        return completion.text

    def start(state: RecbotState, config: RunnableConfig) -> dict[str, Any]:
        question = check_question(state.get("question"))
        history = state.get("history") or []
        thread = (config.get("configurable") or {}).get("thread_id")
        run_id = recorder.start(question, meta={"thread_id": thread, "turn": len(history)} if thread else None)
        shown = list(dict.fromkeys([*(state.get("shown") or []), *(state.get("recommended") or [])]))
        return {"question": question, "run_id": run_id, "status": "running", "answer": None, "shown": shown,
                "preference": state.get("preference") or Preference().model_dump(), "recommended": [],
                "picks": [], "relaxed": [], "notices": [], "clarification": False, "plan": []}  # fmt: skip

    def parse(state: RecbotState) -> dict[str, Any]:
        previous = Preference.model_validate(state["preference"])
        prompt = prompts["parser"].format(
            genres=", ".join(vocabulary.genres[:GENRES_SHOWN]), ratings=", ".join(vocabulary.ratings),
            preference=previous.describe(), shown=_shown_text(catalog, state["shown"][-k:]), message=state["question"],
        )  # fmt: skip
        messages = [user(prompt)]
        for _ in range(1 + max_retries):
            reply = ask("parser", messages, JSON_STOP, 256)
            try:
                preference, notices = parse_preference(reply, previous, vocabulary)
            except PreferenceParseError as fault:
                recorder.annotate_last(error=StepError("parse_error", str(fault)))
                messages = [*messages, assistant(reply), user(RETRY.format(error=fault))]
                continue
            recorder.annotate_last(parsed={"preference": preference.model_dump(), "notices": notices})
            return {"preference": preference.model_dump(), "notices": notices}
        return {"notices": ["could not read the new wishes from that message; kept the previous ones"]}

    def plan(state: RecbotState) -> dict[str, Any]:
        if not planner:
            return {"plan": [s.model_dump() for s in default_plan().steps if s.tool in allowed]}
        preference = Preference.model_validate(state["preference"])
        text = prompts["planner"].format(tools=tool_docs, preference=preference.describe(), message=state["question"])
        messages, faults = [user(text)], []
        for _ in range(1 + max_retries):
            reply = ask("planner", messages, JSON_STOP, 200)
            try:
                chosen = parse_plan(reply, allowed)
            except PlanError as fault:
                recorder.annotate_last(error=StepError("plan_error", str(fault)))
                faults.append(str(fault))
                messages = [*messages, assistant(reply), user(RETRY.format(error=fault))]
                continue
            recorder.annotate_last(parsed={"plan": [s.model_dump() for s in chosen.steps]})
            return {"plan": [s.model_dump() for s in chosen.steps]}
        fallback = [s.model_dump() for s in default_plan().steps if s.tool in allowed]
        recorder.event("plan_fallback", {"errors": faults, "plan": fallback})
        return {"plan": fallback}

    def execute(state: RecbotState) -> dict[str, Any]:
        preference = Preference.model_validate(state["preference"])
        chosen = parse_plan(json.dumps({"steps": state["plan"]}), allowed)  # validated already; our bug if this raises
        done = execute_plan(
            chosen, preference, catalog, question=state["question"], exclude_ids=state["shown"], k=k,
            log=lambda name, args, text: recorder.tool(name, args, text),
        )  # fmt: skip
        notices = [*state["notices"]] + ([f"relaxed: {', '.join(done.relaxed)}"] if done.relaxed else [])
        picks = [p.to_dict() for p in done.picks]
        return {"picks": picks, "recommended": [p["id"] for p in picks], "relaxed": done.relaxed, "notices": notices}

    def clarify(state: RecbotState) -> dict[str, Any]:
        conflicts = Preference.model_validate(state["preference"]).conflicts()
        text = prompts["clarify"].format(message=state["question"], conflicts="; ".join(conflicts))
        reply = _after_label(ask("responder", [user(text)], TEXT_STOP, 80), "Question:") if responder else ""
        if not reply.endswith("?"):  # a small model that does not ask still leaves the user a question
            reply = f"Your wishes contradict each other ({'; '.join(conflicts)}). Which do you mean?"
        return {"answer": reply, "clarification": True, "status": "ok"}

    def respond(state: RecbotState) -> dict[str, Any]:
        picks, relaxed = state["picks"], state["relaxed"]
        relaxed_note = f"Nothing matched every wish, so I relaxed: {', '.join(relaxed)}." if relaxed else ""
        if not picks:
            answer = "I found nothing new that fits, even after relaxing what I could. Try changing a wish."
            return {"answer": answer, "status": "ok"}
        titles = "; ".join(f"{i}. {p['summary']}" for i, p in enumerate(picks, 1))
        text = prompts["responder"].format(message=state["question"], picks=titles, relaxed=relaxed_note)
        said = _after_label(ask("responder", [user(text)], TEXT_STOP, 80), "Reply:") if responder else ""
        intro = " ".join(SENTENCE_END.split(said)[:2]) or "Here is what I found."  # small models list every pick
        listing = [f"{i}. {p['summary']}: {p['why']}" for i, p in enumerate(picks, 1)]
        notes = [f"Note: {n}" for n in state["notices"] if not n.startswith("relaxed")]
        return {"answer": "\n".join(p for p in [intro, *listing, relaxed_note, *notes] if p), "status": "ok"}

    def finish(state: RecbotState) -> dict[str, Any]:
        keys = ("preference", "plan", "picks", "recommended", "relaxed", "notices", "clarification")
        recorder.event("recbot_turn", {key: state.get(key) for key in keys})
        recorder.finish(state["run_id"], status=state["status"], answer=state.get("answer"))
        return {"history": [*(state.get("history") or []), [state["question"], state.get("answer") or ""]]}

    def route(state: RecbotState) -> str:
        return "clarify" if Preference.model_validate(state["preference"]).conflicts() else "plan"

    graph = StateGraph(RecbotState)
    # start is not wrapped: on a thread the state still carries the previous turn's run_id.
    graph.add_node("start", start)
    for node in (parse, plan, execute, clarify, respond, finish):
        graph.add_node(node.__name__, recorder.node(node))
    graph.add_edge(START, "start")
    graph.add_edge("start", "parse")
    graph.add_conditional_edges("parse", route, ["clarify", "plan"])
    graph.add_edge("plan", "execute")
    graph.add_edge("execute", "respond")
    for node in ("clarify", "respond"):
        graph.add_edge(node, "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)


def _shown_text(catalog: Catalog, ids: Sequence[str]) -> str:
    """The titles recommended last, for the parser to resolve "older ones" or "the second one" against."""
    lines = []
    for item_id in ids:
        try:
            lines.append(catalog.get(item_id).summary())
        except CatalogItemNotFound:  # a thread from another catalog version: skip what is gone
            continue
    return "; ".join(lines) or "nothing yet"


def _after_label(text: str, label: str) -> str:
    """The model's words without the label the prompt ended on ("Reply:"), which small models often repeat."""
    text = text.strip()
    return text[len(label) :].strip() if text.lower().startswith(label.lower()) else text
