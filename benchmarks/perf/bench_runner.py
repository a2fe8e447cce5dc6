"""Benchmark-runner overhead per item: `run_benchmark` against a bare `graph.invoke` loop over the same items.

    python benchmarks/perf/bench_runner.py [--items 200] [--repeats 3] [--json]

Both sides use the same zero-latency scripted model (a two-step ReAct script: one tool call, then the
answer), the same tool and a recording trajectory store, so the difference is what the runner adds per
item: a graph built per item, the thread pool, scoring, `set_score`, and one fsync'd results line.
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

from agentdistill.agents.factory import build_agent
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.metrics import qa_score
from agentdistill.benchmarks.results import RunDir, RunSpec
from agentdistill.benchmarks.runner import RunnerConfig, run_benchmark
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import Message
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder

ACTION = 'Thought: look it up\nAction: search\nAction Input: {"query": "capital of Australia"}'


def search(query: str) -> str:
    """Search the knowledge base for `query`."""
    return "[1] Canberra: Canberra is the capital city of Australia."


def two_steps(messages: Sequence[Message]) -> str:
    """First call: a tool call; second call (an observation is in the prompt): the answer."""
    return ACTION if len(messages) <= 2 else "Thought: found it\nFinal Answer: Canberra"


def make_items(n: int) -> list[Item]:
    return [Item(f"q{i}", f"Question {i}: what is the capital of Australia?", ("Canberra",)) for i in range(n)]


def _graph(model: ScriptedModel, recorder: Recorder):  # noqa: ANN202 - a compiled graph
    return build_agent("react", model, kb=None, recorder=recorder, tools=[Tool.from_function(search)])


def _bare_side(items: Sequence[Item], directory: Path) -> float:
    """items/s through one graph invoked in a plain loop (recording on, no runner)."""
    with TrajectoryStore.open(directory / f"bare-{time.monotonic_ns()}.db") as store:
        graph = _graph(ScriptedModel([two_steps], repeat_last=True), Recorder(store, agent="react"))
        start = time.perf_counter()
        for item in items:
            out = graph.invoke({"question": item.question})
            assert out["answer"] == "Canberra"
        return len(items) / (time.perf_counter() - start)


def _runner_side(items: Sequence[Item], directory: Path, concurrency: int) -> float:
    """items/s through run_benchmark (graph per item, scoring, results line, set_score)."""
    stamp = time.monotonic_ns()
    with TrajectoryStore.open(directory / f"runner-{stamp}.db") as store:
        model = ScriptedModel([two_steps], repeat_last=True)
        run_dir = RunDir.create(directory / f"run-{stamp}", RunSpec("perf", "react", model.spec, [i.id for i in items]))
        start = time.perf_counter()
        summary = run_benchmark(
            run_dir, items, make_graph=lambda recorder: _graph(model, recorder), store=store, metric=qa_score,
            config=RunnerConfig(concurrency=concurrency, progress=False), model_spec=model.spec, prices={},
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    assert summary.n == len(items) and summary.correct == len(items), summary
    return len(items) / elapsed


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200, help="items per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements per side")
    parser.add_argument("--concurrency", type=int, default=1, help="runner workers (1 compares like with like)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    items = make_items(args.items)
    sides: dict[str, list[float]] = {"bare": [], "runner": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats + 1):  # rep 0 warms up (imports, first SQLite files)
            bare = _bare_side(items, Path(tmp))
            runner = _runner_side(items, Path(tmp), args.concurrency)
            if rep:
                sides["bare"].append(bare)
                sides["runner"].append(runner)
    bare, runner = statistics.median(sides["bare"]), statistics.median(sides["runner"])
    overhead_ms = (1 / runner - 1 / bare) * 1e3
    result = {"machine": machine_summary(), "items": args.items, "concurrency": args.concurrency,
              "bare_items_per_s": round(bare, 1), "runner_items_per_s": round(runner, 1),
              "overhead_ms_per_item": round(overhead_ms, 2)}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['machine']} | {args.items} items, 2 model calls each | bare graph.invoke loop {bare:.1f} "
              f"items/s | run_benchmark (concurrency {args.concurrency}) {runner:.1f} items/s | "
              f"overhead {overhead_ms:.2f} ms/item")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
