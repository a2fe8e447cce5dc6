"""LAG (Logic-Augmented Generation): decompose, resolve in dependency order, stop when evidence is missing.

The model splits the question into a DAG of atomic sub-questions (agents/lag_plan.py validates it). Each
sub-question, in topological order, gets its dependencies' answers substituted in, is searched for and
answered from the passages alone. A sub-answer of UNANSWERABLE ends the chain. With `on_missing="stop"` (the
paper's logical terminator, the default) the run answers "insufficient information" (how unanswerable MuSiQue
questions must come out) instead of letting synthesis guess; with `on_missing="read"` one last call reads the
original question's own top passages with the facts found so far, as the `reader` baseline would, so a chain
that lost its way on an answerable question still answers.
The chain of sub-questions, rewrites, passages and answers is returned and recorded as a `lag_chain` event.
"""
# over 200 lines: decompose, resolve and synthesise share one closure of model, tools and recorder (plans: lag_plan)

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.common import Status, check_question, final_answer_text, load_prompt, max_steps_message
from agentdistill.agents.lag_plan import (
    UNANSWERABLE,
    PlanError,
    is_unanswerable,
    parse_decomposition,
    parse_short_answer,
    passage_refs,
    render_chain,
    render_history,
    substitute,
    topological_order,
)
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.models.base import ChatModel, Message, assistant, user
from agentdistill.tools.base import Tool, ToolCall, run_tool
from agentdistill.trajectory import Recorder, StepError

INSUFFICIENT = "insufficient information"
LINE_STOP = ["\n\n", "\nQuestion:", "\nPassages:"]  # answers and rewrites are one line; small models ramble on
PLAN_STOP = ["\n\n", "\nQuestion:", "\nExample"]  # the JSON may span lines but not a blank one: small models repeat it
# Per-turn fields a new question on a checkpointed thread starts from (history and messages carry over).
_FRESH_TURN = dict(steps=0, answer=None, status="running", plan=[], chain=[], faults=[], terminated=None)
READ_STOP = ["\nQuestion:", "\nPassages:"]  # the fallback read thinks first, over several lines
ON_MISSING = ("stop", "read")
RETRY = "Your reply is not a valid decomposition: {error}\nReply again with the corrected JSON object only."


class MissingSearchTool(AgentDistillError):
    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            f"the lag agent needs a tool named 'search' (got: {', '.join(names) or 'no tools'}); "
            "pass e.g. make_search_tool(store) from agentdistill.tools.retrieval."
        )


class LagState(TypedDict, total=False):
    question: str
    run_id: str
    messages: Annotated[list[Message], operator.add]  # the conversation: each turn's question and final answer
    steps: int  # model calls made this turn; bounded by max_steps
    answer: str | None
    status: Status
    history: list[list[str]]  # earlier turns as [question, answer]: context for decomposing a follow-up
    plan: list[dict[str, Any]]  # validated sub-questions in topological order
    chain: list[dict[str, Any]]  # one entry per resolved sub-question: rewrite, query, passages, answer
    faults: list[str]  # invalid decompositions the model wrote this turn (each was shown back to it)
    terminated: str | None  # id of the sub-question whose missing evidence stopped the chain


def build_lag_graph(
    model: ChatModel,
    tools: Sequence[Tool],
    *,
    max_steps: int = 12,
    checkpointer: BaseCheckpointSaver | None = None,
    recorder: Recorder | None = None,
    prompts_dir: Path | None = None,
    max_tokens: int = 256,
    max_decompose_retries: int = 2,
    k: int = 3,
    on_missing: str = "stop",
    read_k: int = 5,
) -> CompiledStateGraph:
    """Teacher or student, the graph is the same; `max_steps` bounds model calls per turn, not graph steps.

    `on_missing` says what an UNANSWERABLE sub-answer does: "stop" answers "insufficient information";
    "read" answers the original question from its own top-`read_k` passages and the facts found so far.
    """
    by_name = {tool.name: tool for tool in tools}
    if "search" not in by_name:
        raise MissingSearchTool(sorted(by_name))
    if on_missing not in ON_MISSING:
        raise ConfigError("on_missing", on_missing, " or ".join(repr(m) for m in ON_MISSING))
    limits = {
        "max_steps": (max_steps, 1), "max_decompose_retries": (max_decompose_retries, 0), "k": (k, 1),
        "read_k": (read_k, 1),
    }  # fmt: skip
    for name, (value, low) in limits.items():
        if value < low:
            raise ConfigError(name, value, f"an integer >= {low}")
    recorder = recorder or Recorder(None, agent="lag")
    model = recorder.wrap(model, role="policy")
    names = ("decompose", "answer", "rewrite", "synthesize", "read")
    prompts = {name: load_prompt(f"lag_{name}", prompts_dir) for name in names}
    search_takes_k = "k" in by_name["search"].parameters["properties"]

    def ask(messages: list[Message], stop: list[str]) -> str:
        [completion] = model.generate(messages, stop=stop, max_tokens=max_tokens, temperature=0.0)
        return completion.text

    def out_of_steps(steps: int, answer: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"steps": steps, "status": "max_steps", "answer": answer, **extra}

    def start(state: LagState) -> dict[str, Any]:
        question = check_question(state.get("question"))
        return {
            "question": question,
            "run_id": recorder.start(question),
            "messages": [user(question)],
            **copy.deepcopy(_FRESH_TURN),
        }

    def decompose(state: LagState) -> dict[str, Any]:
        steps, faults = state["steps"], []
        text = prompts["decompose"].format(question=state["question"], history=render_history(state.get("history", [])))
        messages = [user(text)]
        for _ in range(1 + max_decompose_retries):
            if steps >= max_steps:
                return out_of_steps(steps, faults=faults)
            reply, steps = ask(messages, PLAN_STOP), steps + 1
            try:
                plan = parse_decomposition(reply)
            except PlanError as fault:
                recorder.annotate_last(error=StepError("parse_error", str(fault)))
                faults.append(str(fault))
                messages = [*messages, assistant(reply), user(RETRY.format(error=fault))]
                continue
            recorder.annotate_last(parsed=plan.model_dump())
            ordered = [s.model_dump() for s in topological_order(plan.subquestions)]
            return {"steps": steps, "faults": faults, "plan": ordered}
        # A model that cannot plan still gets a fair try: the question itself as the one sub-question.
        recorder.event("lag_fault", {"stage": "decompose", "errors": faults, "fallback": "original question"})
        fallback = [{"id": "q1", "question": state["question"], "depends_on": []}]
        return {"steps": steps, "faults": faults, "plan": fallback}

    def retrieve(query: str, top: int = k) -> str:
        call = ToolCall("search", {"query": query, **({"k": top} if search_takes_k else {})})
        result = run_tool(by_name, call, report_exceptions=True)
        error = StepError(result.error_kind, result.text) if result.error_kind else None
        recorder.tool(call.name, call.args, result.text, error=error)
        return result.text

    def resolve(state: LagState) -> dict[str, Any]:
        steps, chain = state["steps"], list(state["chain"])
        sub = state["plan"][len(chain)]
        answers = {e["id"]: e["answer"] for e in chain}
        query, used = substitute(sub["question"], answers)
        missing = [d for d in sub["depends_on"] if d not in used]
        rewrite_by = "substitution" if used else "none"
        if missing:  # the model named a dependency without a placeholder: one call to fold its answer in
            if steps >= max_steps:
                return out_of_steps(steps)
            known = "\n".join(f"{d}: {answers[d]}" for d in missing)
            reply, steps = ask([user(prompts["rewrite"].format(question=query, answers=known))], LINE_STOP), steps + 1
            rewritten = parse_short_answer(reply)
            recorder.annotate_last(parsed={"rewritten": rewritten})
            query = rewritten or f"{query} (given {'; '.join(f'{d} = {answers[d]}' for d in missing)})"
            rewrite_by = "model"
        observation = retrieve(query)
        if steps >= max_steps:
            return out_of_steps(steps)
        reply, steps = ask([user(prompts["answer"].format(question=query, passages=observation))], LINE_STOP), steps + 1
        answer = parse_short_answer(reply)
        unanswerable = is_unanswerable(answer)
        recorder.annotate_last(parsed={"answer": answer, "unanswerable": unanswerable})
        chain.append({**sub, "query": query, "rewrite_by": rewrite_by, "passages": passage_refs(observation),
                      "answer": UNANSWERABLE if unanswerable else answer})  # fmt: skip
        if unanswerable:  # the logical terminator: a needed fact is missing, so synthesis would only guess
            recorder.event("terminated", {"subquestion": sub["id"], "question": query,
                                          "reason": "no supporting passage", "then": on_missing})  # fmt: skip
            if on_missing == "read":
                return {"steps": steps, "chain": chain, "terminated": sub["id"]}
            return {"steps": steps, "chain": chain, "terminated": sub["id"], "answer": INSUFFICIENT, "status": "ok"}
        return {"steps": steps, "chain": chain}

    def synthesize(state: LagState) -> dict[str, Any]:
        steps, chain = state["steps"], state["chain"]
        if len(chain) == 1:  # one sub-question is the question itself: its answer is final, no call needed
            return {"answer": chain[0]["answer"], "status": "ok"}
        if steps >= max_steps:
            return out_of_steps(steps, chain[-1]["answer"])
        text = prompts["synthesize"].format(question=state["question"], chain=render_chain(chain))
        answer = parse_short_answer(ask([user(text)], LINE_STOP))
        recorder.annotate_last(parsed={"answer": answer})
        final = chain[-1]["answer"] if not answer else INSUFFICIENT if is_unanswerable(answer) else answer
        return {"steps": steps + 1, "answer": final, "status": "ok"}

    def read(state: LagState) -> dict[str, Any]:
        steps, question = state["steps"], state["question"]
        if steps >= max_steps:
            return out_of_steps(steps, INSUFFICIENT)
        found = [e for e in state["chain"] if e["answer"] != UNANSWERABLE]
        facts = "\n".join(f"- {e['query']} {e['answer']}" for e in found) or "(none)"
        text = prompts["read"].format(question=question, facts=facts, passages=retrieve(question, read_k))
        answer = final_answer_text(ask([user(text)], READ_STOP))
        recorder.annotate_last(parsed={"answer": answer})
        return {"steps": steps + 1, "answer": answer or INSUFFICIENT, "status": "ok"}

    def finish(state: LagState) -> dict[str, Any]:
        status, answer, question = state["status"], state.get("answer"), state["question"]
        recorder.event("lag_chain", {"question": question, "subquestions": state["plan"], "chain": state["chain"],
                                     "faults": state["faults"], "terminated": state.get("terminated"),
                                     "answer": answer, "status": status})  # fmt: skip
        error = StepError("max_steps", max_steps_message(max_steps)) if status == "max_steps" else None
        recorder.finish(state["run_id"], status=status, answer=answer, error=error)
        shown = answer if answer is not None else max_steps_message(max_steps)
        return {"messages": [assistant(shown)], "history": [*state.get("history", []), [question, answer or ""]]}

    def after_resolve(state: LagState) -> str:
        if state["status"] != "running":
            return "finish"
        if state.get("terminated"):
            return "read"
        return "resolve" if len(state["chain"]) < len(state["plan"]) else "synthesize"

    graph = StateGraph(LagState)
    # start records no step and must not attach a failure (an empty question) to the previous turn's run_id.
    graph.add_node("start", start)
    for node in (decompose, resolve, synthesize, read, finish):
        graph.add_node(node.__name__, recorder.node(node))
    graph.add_edge(START, "start")
    graph.add_edge("start", "decompose")
    graph.add_conditional_edges(
        "decompose", lambda s: "resolve" if s["status"] == "running" else "finish", ["resolve", "finish"]
    )
    graph.add_conditional_edges("resolve", after_resolve, ["resolve", "synthesize", "read", "finish"])
    graph.add_edge("synthesize", "finish")
    graph.add_edge("read", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)
