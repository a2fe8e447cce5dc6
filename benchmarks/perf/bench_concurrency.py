"""Runner throughput against a local OpenAI-compatible server with simulated latency, by worker count.

    python benchmarks/perf/bench_concurrency.py [--workers 1 4 8 16] [--latency 0.2] [--waves 6] [--json]

FakeOpenAIServer answers every chat request after `--latency` seconds over real HTTP on 127.0.0.1, standing
in for a slow teacher. Each item is a two-step ReAct run (a tool call, then the answer): two model calls.
Each point runs `waves * workers` items, so every point lasts about as long. Goal: 8 workers >= 7x one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_runner import make_items, search, two_steps
from common import machine_summary

from agentdistill.agents.factory import build_agent
from agentdistill.benchmarks.metrics import qa_score
from agentdistill.benchmarks.results import RunDir, RunSpec
from agentdistill.benchmarks.runner import RunnerConfig, run_benchmark
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import ChatModel, ModelOptions, make_chat_model
from agentdistill.testing.openai_server import FakeOpenAIServer
from agentdistill.tools.base import Tool

SPEC = "openai:fake-model"


def _reply(messages: list[dict[str, Any]]) -> str:
    return two_steps(messages)  # type: ignore[arg-type]  # the server passes plain dicts


def _throughput(model: ChatModel, workers: int, n_items: int, directory: Path) -> tuple[float, float]:
    """(items/s, seconds) for `n_items` through run_benchmark with `workers` workers."""
    items = make_items(n_items)
    stamp = time.monotonic_ns()
    with TrajectoryStore.open(directory / f"t-{stamp}.db") as store:
        run_dir = RunDir.create(directory / f"run-{stamp}", RunSpec("perf", "react", SPEC, [i.id for i in items]))

        def make_graph(recorder):  # noqa: ANN001, ANN202 - Recorder -> compiled graph
            return build_agent("react", model, kb=None, recorder=recorder, tools=[Tool.from_function(search)])

        start = time.perf_counter()
        summary = run_benchmark(
            run_dir, items, make_graph=make_graph, store=store, metric=qa_score,
            config=RunnerConfig(concurrency=workers, progress=False), model_spec=SPEC, prices={},
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    assert summary.correct == n_items and summary.steps_mean == 2, summary
    return n_items / elapsed, elapsed


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8, 16], help="worker counts to measure")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server waits per request")
    parser.add_argument("--waves", type=int, default=6, help="items per worker at each point")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    points: list[dict[str, float]] = []
    with FakeOpenAIServer(_reply, latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        model = make_chat_model(SPEC, ModelOptions(base_url=server.base_url, api_key="EMPTY"))
        _throughput(model, 2, 4, Path(tmp))  # warm-up: imports, HTTP connections, first SQLite files
        for workers in args.workers:
            rate, seconds = _throughput(model, workers, args.waves * workers, Path(tmp))
            points.append({"workers": workers, "items": args.waves * workers, "seconds": round(seconds, 2),
                           "items_per_s": round(rate, 2)})  # fmt: skip
    base = next((p["items_per_s"] for p in points if p["workers"] == 1), None)
    for point in points:
        point["speedup"] = round(point["items_per_s"] / base, 2) if base else float("nan")
    ideal = 1 / (2 * args.latency)  # items/s of one worker if only the server's latency counted
    result = {"machine": machine_summary(), "latency_s": args.latency, "model_calls_per_item": 2,
              "ideal_items_per_s_one_worker": round(ideal, 2), "points": points,
              "goal": "8 workers >= 7x one"}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['machine']} | server latency {args.latency:g} s, 2 model calls per item "
              f"(ideal 1 worker: {ideal:.2f} items/s)")  # fmt: skip
        for p in points:
            print(f"  {p['workers']:>3} workers: {p['items']:>4} items in {p['seconds']:>6.2f} s = "
                  f"{p['items_per_s']:>6.2f} items/s  ({p['speedup']:.2f}x one worker)")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
