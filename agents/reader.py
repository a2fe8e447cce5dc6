"""The retrieval baseline: search once with the question, then one call answers from those passages.

The same knowledge base and the same `search` tool the agents use, but no decomposition and no loop: what
react or lag must beat in F1 to be worth their calls (`bench compare` on the same items and model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.common import Status, check_question, final_answer_text, load_prompt
from agentdistill.agents.lag import MissingSearchTool
from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, user
from agentdistill.tools.base import Tool, ToolCall, run_tool
from agentdistill.trajectory import Recorder, StepError

STOP = ["\nQuestion:", "\nPassages:"]


class ReaderState(TypedDict, total=False):
    question: str
    run_id: str
    passages: str
    answer: str | None
    status: Status
    error: str | None


def build_reader_graph(
    model: ChatModel,
    tools: Sequence[Tool],
    *,
    k: int = 5,
    max_tokens: int = 256,
    recorder: Recorder | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    prompts_dir: Path | None = None,
    max_steps: int | None = None,  # accepted for a uniform interface: this graph makes exactly one call
) -> CompiledStateGraph:
    """`{"question": q}` in; the top-`k` passages of `search(q)` and one model call; `answer` out."""
    by_name = {t.name: t for t in tools}
    if "search" not in by_name:
        raise MissingSearchTool(list(by_name))
    if not 1 <= k <= 10:
        raise ConfigError("k", k, "between 1 and 10 passages")
    recorder = recorder or Recorder(None, agent="reader")
    template = load_prompt("reader", prompts_dir)
    model = recorder.wrap(model, role="policy")

    def start(state: ReaderState) -> dict[str, Any]:
        question = check_question(state.get("question"))
        return {"question": question, "run_id": recorder.start(question), "status": "running"}

    def retrieve(state: ReaderState) -> dict[str, Any]:
        call = ToolCall("search", {"query": state["question"], "k": k})
        result = run_tool(by_name, call)
        error = StepError(result.error_kind, result.text) if result.error_kind else None
        recorder.tool(call.name, call.args, result.text, error=error)
        return {"passages": result.text}

    def read(state: ReaderState) -> dict[str, Any]:
        prompt = template.format(passages=state["passages"], question=state["question"])
        [reply] = model.generate([user(prompt)], stop=STOP, max_tokens=max_tokens, temperature=0.0)
        final = final_answer_text(reply.text)
        recorder.annotate_last(parsed={"answer": final})
        recorder.finish(state["run_id"], status="ok", answer=final)
        return {"answer": final, "status": "ok", "error": None}

    graph = StateGraph(ReaderState)
    graph.add_node("start", start)
    graph.add_node("retrieve", recorder.node(retrieve))
    graph.add_node("read", recorder.node(read))
    graph.add_edge(START, "start")
    graph.add_edge("start", "retrieve")
    graph.add_edge("retrieve", "read")
    graph.add_edge("read", END)
    return graph.compile(checkpointer=checkpointer)
