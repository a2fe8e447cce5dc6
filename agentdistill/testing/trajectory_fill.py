"""A trajectory store filled with many realistic runs, fast: for the UI's perf script and browser tests.

Runs look like what the agents record: a few agents and model specs, teacher and student runs of the same
benchmark items, ReAct-shaped steps (model call, tool call, model call, ...) whose prompts grow turn by turn,
statuses, scores and suite tags, spread over `days` days. Deterministic for a given seed. Everything goes in
through `TrajectoryStore.add_runs`, one transaction per batch, so 100k runs take tens of seconds, not hours.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.trajectory import Run, Step, StepError

AGENTS = ("react", "codeact", "lag", "recbot")
MODELS = ("local:qwen2.5-coder-0.5b", "local:smollm2-135m", "openai:gpt-4o-mini", "student:/runs/lag-sample")
SUITES = ("hotpotqa", "hotpotqa:train", "gsm8k", "2wiki", None)
STATUSES = ("ok",) * 7 + ("max_steps", "error", "running")
WORDS = tuple(
    "river capital author film year population founded album director novel bridge island mountain composer team"
    " election museum language border war".split()
)
BATCH = 2_000


def fill_store(path: str | Path, n: int, *, seed: int = 0, steps: int = 4, days: float = 90.0) -> int:
    """Add `n` runs of about `steps` steps each to the store at `path` (created when missing); returns runs added.

    Run ids are `fill-<seed>-<i as 7 digits>`: the same seed again adds nothing, another seed adds more runs.
    """
    rng = random.Random(seed)
    added = 0
    with TrajectoryStore.open(path) as store:
        batch: list[Run] = []
        for run in _runs(rng, n, seed=seed, steps=steps, days=days):
            batch.append(run)
            if len(batch) == BATCH:
                added += store.add_runs(batch)[0]
                batch = []
        added += store.add_runs(batch)[0]
    return added


def _runs(rng: random.Random, n: int, *, seed: int, steps: int, days: float) -> Iterator[Run]:
    end = time.time()
    start = end - days * 86_400
    for i in range(n):
        created = start + (end - start) * (i + rng.random()) / max(n, 1)  # oldest first, as a store fills up
        status = rng.choice(STATUSES)
        suite = rng.choice(SUITES)
        item = f"{suite or 'adhoc'}-{rng.randrange(500)}"
        question = _question(random.Random(item))  # one item, one question: teacher and student runs share it
        run = Run(
            id=f"fill-{seed}-{i:07d}",
            agent=rng.choice(AGENTS),
            question=question,
            models={"policy": rng.choice(MODELS)},
            status=status,  # type: ignore[arg-type]
            answer=None if status in ("error", "running") else " ".join(rng.choices(WORDS, k=rng.randint(1, 4))),
            error=StepError("timeout", "the item ran past 900 s") if status == "error" else None,
            score=None if suite is None or status == "running" else float(rng.random() < 0.4),
            metrics={} if suite is None else {"em": 0.0, "f1": round(rng.random(), 3)},
            suite=suite,
            item_id=None if suite is None else item,
            meta={"prompt_hash": f"{rng.getrandbits(32):08x}"},
            created_at=created,
            finished_at=None if status == "running" else created + rng.uniform(2, 60),
        )
        run.steps = _steps(rng, run, rng.randint(max(steps - 2, 1), steps + 2))
        yield run


def _question(rng: random.Random) -> str:
    words = " ".join(rng.choices(WORDS, k=rng.randint(6, 14)))
    return f"Which {words}?"


def _steps(rng: random.Random, run: Run, count: int) -> list[Step]:
    system = {"role": "system", "content": "Answer the question. Tools: search(query), lookup(title). " * 8}
    messages = [system, {"role": "user", "content": run.question}]
    out: list[Step] = []
    for index in range(count):
        if index % 2 == 0:
            query = " ".join(rng.choices(WORDS, k=3))
            completion = f'Thought: I should look up {query}.\nAction: search\nAction Input: {{"query": "{query}"}}'
            out.append(Step(run_id=run.id, index=index, kind="model", node="think", model=run.models["policy"],
                            messages_in=list(messages), completion=completion, parsed={"tool": "search"},
                            prompt_tokens=40 * len(messages), completion_tokens=rng.randint(20, 60),
                            latency_s=rng.uniform(0.2, 3.0), created_at=run.created_at + index))  # fmt: skip
            messages.append({"role": "assistant", "content": completion})
        else:
            observation = " ".join(rng.choices(WORDS, k=60))
            out.append(Step(run_id=run.id, index=index, kind="tool", node="act", tool="search",
                            tool_args={"query": query}, observation=observation,
                            created_at=run.created_at + index))  # fmt: skip
            messages.append({"role": "user", "content": f"Observation: {observation}"})
    return out
