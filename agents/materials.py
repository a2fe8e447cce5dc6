"""LLaMP-style materials agent: a supervisor delegates to a data assistant and a calculation assistant.

The supervisor model reads the question and what its assistants reported so far, and each turn either delegates
one task (`data`: the ReAct graph over the materials tools, which looks records up and cites their ids; `calc`:
the CodeAct graph with its sandbox, whose code can call the exact calculators) or answers, citing material ids;
the cited ids are checked against what the tools returned (agents/materials_cite.py). The assistants are the
existing graphs, built once and invoked per task, not copies. They record into the supervisor's run through
DelegateRecorder, so one trajectory holds every level's calls by role (`supervisor`, `data.policy`,
`calc.policy`) and each level can be distilled on its own examples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.codeact import build_codeact_graph
from agentdistill.agents.common import Status, check_question, earlier_turns, load_prompt, max_steps_message
from agentdistill.agents.materials_cite import cite, observations
from agentdistill.agents.react import build_react_graph
from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, system, user
from agentdistill.tools.base import Tool
from agentdistill.tools.sandbox import PythonSandbox
from agentdistill.trajectory import DelegateRecorder, Recorder, StepError

ASSISTANTS = ("data", "calc")
# A small supervisor goes on to write its assistants' reports itself ("[data] reported: ..."): cut it there.
STOP = ("\nObservation:", "\nQuestion:", "[data]", "[calc]")
_FINAL = re.compile(r"Final Answer\s*:\s*(.+)", re.DOTALL | re.IGNORECASE)
_DELEGATE = re.compile(r"Delegate\s*:\s*(\w+)\s*\n\s*Task\s*:\s*(.+)", re.DOTALL | re.IGNORECASE)
FORMAT_HINT = "write `Delegate: data` or `Delegate: calc` with a `Task:` line, or `Final Answer: ...`"


class MaterialsState(TypedDict, total=False):
    question: str
    run_id: str
    findings: list[list[str]]  # [assistant, task, what it reported], in order
    steps: int  # supervisor calls made
    decision: list[str]  # [kind, text] of the supervisor's last reply: final | data | calc | fault
    observed: list[str]  # what the assistants' tools returned for this question: the ids an answer may cite
    answer: str | None
    sources: list[str]  # the observed material ids the answer rests on (agents/materials_cite.py)
    status: Status
    error: str | None
    history: list[list[str]]  # [question, answer] of earlier turns on this thread (kept by the checkpointer)


def parse_decision(text: str) -> tuple[str, str]:
    """(kind, text) of a supervisor reply: ("final", answer), ("data" | "calc", task) or ("fault", what is wrong)."""
    delegate = _DELEGATE.search(text)
    final = _FINAL.search(text)
    if delegate and (final is None or delegate.start() < final.start()):
        who, task = delegate.group(1).lower(), delegate.group(2).strip().split("\n\n")[0].strip()
        if who not in ASSISTANTS:
            return "fault", f"there is no assistant {who!r}: {FORMAT_HINT}"
        return (who, task) if task else ("fault", f"the task for {who} is empty: {FORMAT_HINT}")
    if final is not None and final.group(1).strip():
        return "final", final.group(1).strip().splitlines()[0].strip()
    return "fault", f"no delegation and no final answer: {FORMAT_HINT}"


def same_task(a: str, b: str) -> bool:
    """Whether two task texts ask the same thing: the same words, case and punctuation aside."""
    return re.findall(r"\w+", a.lower()) == re.findall(r"\w+", b.lower())


def findings_text(findings: Sequence[Sequence[str]]) -> str:
    """What the assistants reported so far, as the supervisor reads it."""
    if not findings:
        return "Nothing has been looked up yet."
    return "\n".join(f"[{who}] task: {task}\n[{who}] reported: {said}" for who, task, said in findings)


def build_materials_graph(
    model: ChatModel,
    tools: Sequence[Tool],
    *,
    sandbox: PythonSandbox,
    max_steps: int = 5,
    checkpointer: BaseCheckpointSaver | None = None,
    recorder: Recorder | None = None,
    prompts_dir: Path | None = None,
    data_steps: int = 6,
    calc_steps: int = 4,
    max_tokens: int = 256,
) -> CompiledStateGraph:
    """The supervisor over a data assistant (react with `tools`) and a calc assistant (codeact; `tools` are
    callable from its code). `max_steps` bounds the supervisor's calls; `data_steps`/`calc_steps` each task."""
    if max_steps < 1:
        raise ConfigError("max_steps", max_steps, "a positive number of supervisor calls per question")
    recorder = recorder or Recorder(None, agent="materials")
    assistants = {
        "data": build_react_graph(model, tools, recorder=DelegateRecorder(recorder, "data"), max_steps=data_steps,
                                  prompts_dir=prompts_dir, system_prompt="materials_data_system", on_repeat="answer"),
        "calc": build_codeact_graph(model, tools, sandbox=sandbox, recorder=DelegateRecorder(recorder, "calc"),
                                    max_steps=calc_steps, prompts_dir=prompts_dir),
    }  # fmt: skip
    supervisor = recorder.wrap(model, role="supervisor")
    system_prompt = load_prompt("materials_supervisor", prompts_dir)
    user_template = load_prompt("materials_user", prompts_dir)

    def start(state: MaterialsState, config: RunnableConfig) -> dict[str, Any]:
        question = check_question(state.get("question"))
        thread, turn = (config.get("configurable") or {}).get("thread_id"), len(state.get("history") or [])
        run_id = recorder.start(question, meta={"thread_id": thread, "turn": turn} if thread else None)
        return {"question": question, "run_id": run_id, "findings": [], "steps": 0, "decision": [], "observed": [],
                "answer": None, "sources": [], "status": "running", "error": None}  # fmt: skip

    def decide(state: MaterialsState) -> dict[str, Any]:
        prompt = user_template.format(question=state["question"], findings=findings_text(state["findings"]),
                                      history=earlier_turns(state.get("history") or []))  # fmt: skip
        [reply] = supervisor.generate([system(system_prompt), user(prompt)], stop=STOP, max_tokens=max_tokens)
        kind, text = parse_decision(reply.text)
        done = [said for who, task, said in state["findings"] if who == kind and same_task(task, text)]
        if done:  # the assistants decode greedily: the same task would bring the same report, so that is the answer
            recorder.annotate_last(parsed={"kind": kind, "text": text, "repeated": True})
            return {"steps": state["steps"] + 1, "decision": ["final", done[-1]]}
        if kind not in ASSISTANTS and not any(who in ASSISTANTS for who, _, _ in state["findings"]):
            # A guess or an unreadable reply before any lookup: the question goes to data as it is (what the
            # supervisor is told is often the best task). Feeding the fault back did not help: Qwen2.5-Coder-0.5B
            # went on writing its assistants' reports itself, which the stop sequences cut to nothing, five times.
            why = text if kind == "fault" else "answered before any assistant reported"
            recorder.annotate_last(error=StepError("protocol_error", f"{why}: the question went to data as it is"))
            return {"steps": state["steps"] + 1, "decision": ["data", state["question"]]}
        if kind == "fault":
            recorder.annotate_last(error=StepError("parse_error", text))
            return {"steps": state["steps"] + 1, "decision": [kind, text],
                    "findings": [*state["findings"], ["supervisor", "(format)", f"Error: {text}"]]}  # fmt: skip
        recorder.annotate_last(parsed={"kind": kind, "text": text})
        return {"steps": state["steps"] + 1, "decision": [kind, text]}

    def delegate(state: MaterialsState) -> dict[str, Any]:
        who, task = state["decision"]
        out = assistants[who].invoke({"question": task})
        said = out.get("answer") or f"no answer ({out.get('status')}: {out.get('error') or 'nothing found'})"
        seen = observations(out.get("messages") or [], task)
        return {"findings": [*state["findings"], [who, task, said]], "observed": [*state.get("observed", []), *seen]}

    def finish(state: MaterialsState) -> dict[str, Any]:
        kind, text = state["decision"] or ["", ""]
        if kind == "final":
            answer, status, error = text, "ok", None
        else:  # out of supervisor calls: the last assistant report is the best answer there is
            reports = [said for who, _, said in state["findings"] if who in ASSISTANTS]
            answer, status, error = (reports[-1] if reports else None), "max_steps", max_steps_message(max_steps)
        citation = cite(answer, state.get("observed", []), state["question"]) if answer else None
        answer = citation.answer if citation else answer
        recorder.finish(state["run_id"], status=status, answer=answer,
                        error=StepError("max_steps", error) if error else None)  # fmt: skip
        history = [*(state.get("history") or []), [state["question"], answer or ""]]
        return {"answer": answer, "status": status, "error": error, "history": history,
                "sources": list(citation.sources) if citation else []}  # fmt: skip

    def route(state: MaterialsState) -> str:
        kind = state["decision"][0]
        if kind == "final" or state["steps"] >= max_steps:
            return "finish"
        return "delegate" if kind in ASSISTANTS else "decide"

    graph = StateGraph(MaterialsState)
    graph.add_node("start", start)  # not recorder.node: on a thread its state still holds the last turn's run_id
    for name, fn in (("decide", decide), ("delegate", delegate), ("finish", finish)):
        graph.add_node(name, recorder.node(fn, name))
    graph.add_edge(START, "start")
    graph.add_edge("start", "decide")
    graph.add_conditional_edges("decide", route, ["finish", "delegate", "decide"])
    graph.add_edge("delegate", "decide")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)
