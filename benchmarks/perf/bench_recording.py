"""Recording overhead per model call: a zero-latency scripted model, recorded vs not, in the same run.

    python benchmarks/perf/bench_recording.py [--calls 2000] [--json]

The difference per call is what the recorder (step serialisation + one SQLite commit in WAL) costs.
Goal: < 500 us per call.
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

from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import user
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder

PROMPT = [user("Question: what is the capital of Australia? " * 20)]  # ~a ReAct prompt's size
REPLY = 'Thought: I should search.\nAction: search\nAction Input: {"query": "capital of Australia"}'


def _per_call_us(calls: int, recorded: bool, directory: Path) -> float:
    model = ScriptedModel([REPLY], repeat_last=True)
    if recorded:
        store = TrajectoryStore.open(directory / f"bench-{time.monotonic_ns()}.db")
        recorder = Recorder(store, agent="bench")
        wrapped = recorder.wrap(model)
        run_id = recorder.start("bench")
        call = recorder.node(lambda state: wrapped.generate(PROMPT, stop=["\nObservation:"]), name="think")
        state = {"run_id": run_id}
    else:
        call = lambda state: model.generate(PROMPT, stop=["\nObservation:"])  # noqa: E731
        state = {}
    start = time.perf_counter()
    for _ in range(calls):
        call(state)
    return (time.perf_counter() - start) / calls * 1e6


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="model calls per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved measurements per side")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    sides: dict[str, list[float]] = {"bare": [], "recorded": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats + 1):  # rep 0 warms up
            for name in sides:
                us = _per_call_us(args.calls, name == "recorded", Path(tmp))
                if rep:
                    sides[name].append(us)
    bare, recorded = statistics.median(sides["bare"]), statistics.median(sides["recorded"])
    result = {"machine": machine_summary(), "bare_us_per_call": round(bare, 1),
              "recorded_us_per_call": round(recorded, 1), "overhead_us_per_call": round(recorded - bare, 1),
              "goal_us": 500}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['machine']} | bare {bare:.1f} us/call | recorded {recorded:.1f} us/call | "
              f"overhead {recorded - bare:.1f} us/call (goal < 500)")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
