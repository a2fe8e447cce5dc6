"""Re-tokenisation drift: how often a student tokenizer, re-encoding a teacher's completion text, gets other ids
than the ones the teacher sampled (what token-exact training avoids).

    python benchmarks/perf/token_drift.py --student local:qwen2.5-coder-0.5b [--agent codeact] [--suite gsm8k]
        [--home DIR] [--json]

Reads recorded runs with token records (`Step.tokens`, written by local backends) from the home's store. Only
calls whose teacher shares the student's tokenizer (equal tokenizer ids) are compared: for the others the ids
mean different things and re-tokenising is the only option.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from common import machine_summary

from agentdistill.config import load_settings
from agentdistill.distill.chat_examples import token_exact_record
from agentdistill.distill.encoding import student_tokenizer_id
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.weights import base_weights
from agentdistill.paths import cache_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", required=True, help="student spec whose tokenizer re-encodes the text")
    parser.add_argument("--agent", help="only runs of this agent")
    parser.add_argument("--suite", help="only runs of this suite tag")
    parser.add_argument("--home", help="agentdistill home (default: AGENTDISTILL_HOME)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    settings = load_settings(flags={"home": args.home} if args.home else None)
    tokenizer = AutoTokenizer.from_pretrained(base_weights(args.student, cache_dir()))
    student_id = student_tokenizer_id(tokenizer)
    calls = same = other_tokenizer = differ = tokens = tokens_off = 0
    examples: list[dict] = []
    with TrajectoryStore.open(settings.trajectories_path) as store:
        for run in store.iter_runs(agent=args.agent, suite=args.suite):
            for step in run.steps:
                record = token_exact_record(step) if step.kind == "model" else None
                if record is None:
                    continue
                calls += 1
                if record["tokenizer"] != student_id:
                    other_tokenizer += 1
                    continue
                sampled = record["completion"]
                text = tokenizer.decode(sampled, skip_special_tokens=True)
                again = tokenizer.encode(text, add_special_tokens=False)
                same += 1
                tokens += len(sampled)
                if again != sampled:
                    differ += 1
                    first = next((i for i, (a, b) in enumerate(zip(again, sampled, strict=False)) if a != b), None)
                    first = min(len(again), len(sampled)) if first is None else first
                    tokens_off += max(len(again), len(sampled)) - first
                    if len(examples) < 5:
                        pieces = tokenizer.convert_ids_to_tokens
                        examples.append({"run": run.id[:8], "sampled": pieces(sampled[first : first + 4]),
                                         "retokenised": pieces(again[first : first + 4])})  # fmt: skip
    result = {"student": args.student, "calls_with_ids": calls, "other_tokenizer": other_tokenizer,
              "compared": same, "calls_that_drift": differ, "drift_share": differ / same if same else None,
              "tokens": tokens, "tokens_from_first_drift_on": tokens_off, "examples": examples}  # fmt: skip
    if args.json:
        print(json.dumps({"machine": machine_summary(), **result}))
        return
    print(machine_summary())
    for key, value in result.items():
        print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
