"""The bare baseline: the same model asked once, zero-shot chain of thought, no tools, no agent loop.

What an agent must beat to be worth its extra calls: `bench compare` of `--agent cot` against `--agent
codeact` (or react, lag) on the same items and model says whether the agent helps. The prompt asks for the
reasoning and a last "Final Answer: ..." line; `final_answer_text` takes the answer from it. `task` picks
the wording: math (a number) or qa (a short phrase).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.common import (
    Status,
    check_question,
    final_answer_text,
    has_answer_marker,
    last_number,
    load_prompt,
)
from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, user
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder

STOP = ["\nProblem:", "\nQuestion:"]  # small models go on to invent the next exercise


class CotState(TypedDict, total=False):
    question: str
    run_id: str
    reasoning: str
    answer: str | None
    status: Status
    error: str | None


def build_cot_graph(
    model: ChatModel,
    tools: Sequence[Tool] = (),
    *,
    task: Literal["math", "qa"] = "math",
    max_tokens: int = 512,
    recorder: Recorder | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    prompts_dir: Path | None = None,
    max_steps: int | None = None,  # accepted for a uniform interface: this graph makes exactly one call
) -> CompiledStateGraph:
    """One greedy call: `{"question": q}` in, `answer` (and the `reasoning` text) out. `tools` are ignored."""
    if task not in ("math", "qa"):
        raise ConfigError("task", task, "math or qa (--option task=qa for questions with short text answers)")
    recorder = recorder or Recorder(None, agent="cot")
    template = load_prompt(f"cot_{task}", prompts_dir)
    model = recorder.wrap(model, role="policy")

    def start(state: CotState) -> dict[str, Any]:
        question = check_question(state.get("question"))
        run_id = recorder.start(question)
        return {"question": question, "run_id": run_id, "status": "running"}

    def call(state: CotState) -> dict[str, Any]:
        [reply] = model.generate([user(template.format(question=state["question"]))], stop=STOP,
                                 max_tokens=max_tokens, temperature=0.0)  # fmt: skip
        final = final_answer_text(reply.text)
        if task == "math" and not has_answer_marker(reply.text):  # no "Final Answer:"/\boxed: the last number
            final = last_number(reply.text) or final
        recorder.annotate_last(parsed={"answer": final})
        recorder.finish(state["run_id"], status="ok", answer=final)
        return {"reasoning": reply.text, "answer": final, "status": "ok", "error": None}

    graph = StateGraph(CotState)
    graph.add_node("start", start)
    graph.add_node("call", recorder.node(call))
    graph.add_edge(START, "start")
    graph.add_edge("start", "call")
    graph.add_edge("call", END)
    return graph.compile(checkpointer=checkpointer)
