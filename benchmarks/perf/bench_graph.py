"""Graph + recording overhead per agent step, against a bare Python loop making the same calls.

    python benchmarks/perf/bench_graph.py [--runs 30] [--steps 8] [--json]

Both sides use the same zero-latency scripted model, the same ReAct parser and the same tool, so the
difference is what LangGraph's state machine plus our recorder (one SQLite commit per step) cost.
Goal: <= 1 ms per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import machine_summary

from agentdistill.agents.react import build_react_graph, react_messages
from agentdistill.agents.react_parse import FinalAnswer, parse_react, to_tool_call
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import assistant, user
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool, run_tool
from agentdistill.trajectory import Recorder

ACTION = 'Thought: look it up\nAction: search\nAction Input: {"query": "capital of Australia"}'


def search(query: str) -> str:
    """Search the knowledge base for `query`."""
    return "[1] Canberra: Canberra is the capital city of Australia."


def _script(steps: int) -> list[str]:
    return [ACTION] * (steps - 1) + ["Thought: done\nFinal Answer: Canberra"]


def _graph_side(runs: int, steps: int, directory: Path) -> float:
    store = TrajectoryStore.open(directory / f"g-{time.monotonic_ns()}.db")
    model = ScriptedModel(_script(steps) * runs)
    graph = build_react_graph(model, [Tool.from_function(search)], max_steps=steps + 1,
                              recorder=Recorder(store, agent="react"))  # fmt: skip
    start = time.perf_counter()
    for _ in range(runs):
        out = graph.invoke({"question": "What is the capital of Australia?"})
        assert out["answer"] == "Canberra"
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed / (runs * steps) * 1e3


def _bare_side(runs: int, steps: int) -> float:
    tools = [Tool.from_function(search)]
    by_name = {t.name: t for t in tools}
    model = ScriptedModel(_script(steps) * runs)
    start = time.perf_counter()
    for _ in range(runs):
        messages = react_messages("What is the capital of Australia?", [], tools, None)
        while True:
            [reply] = model.generate(messages, stop=["\nObservation:", "Observation:"], max_tokens=256)
            action = parse_react(reply.text)
            if isinstance(action, FinalAnswer):
                break
            result = run_tool(by_name, to_tool_call(action.tool, action.args, by_name))
            messages = [*messages, assistant(reply.text), user(f"Observation: {result.text}")]
    return (time.perf_counter() - start) / (runs * steps) * 1e3


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="agent runs per measurement")
    parser.add_argument("--steps", type=int, default=8, help="model calls per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements per side")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    sides: dict[str, list[float]] = {"bare": [], "graph": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats + 1):  # rep 0 warms up
            sides["bare"].append(_bare_side(args.runs, args.steps))
            sides["graph"].append(_graph_side(args.runs, args.steps, Path(tmp)))
            if rep == 0:
                sides = {name: [] for name in sides}
    bare, graph = statistics.median(sides["bare"]), statistics.median(sides["graph"])
    result = {"machine": machine_summary(), "bare_ms_per_step": round(bare, 3), "graph_ms_per_step": round(graph, 3),
              "overhead_ms_per_step": round(graph - bare, 3), "goal_ms": 1.0}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['machine']} | bare loop {bare:.3f} ms/step | graph + recorder {graph:.3f} ms/step | "
              f"overhead {graph - bare:.3f} ms/step (goal <= 1)")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
