"""One on-policy round's data: the student's rollouts in the agent graph, and examples of its own token ids.

The rollouts are a bench run (run_suite, the graph, tools and metric the teacher is measured with), so they are
recorded to the trajectory store, scored, and resumed item by item like any bench run. Every model call whose
backend recorded its sampled ids becomes an example, whether the run was right or wrong: on-policy, the student
learns where it went, not only where it went right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentdistill.agents.factory import prompt_hash
from agentdistill.benchmarks.items import Item, items_digest
from agentdistill.benchmarks.results import RUN_FILE, ItemResult, RunDir, RunSpec
from agentdistill.benchmarks.runner import RunnerConfig
from agentdistill.benchmarks.suite_run import SuiteAgent, run_suite
from agentdistill.distill.chat_examples import (
    FORMAT_ERRORS,
    ChatExample,
    dedupe,
    examples_from_runs,
    token_exact_record,
    trainable,
)
from agentdistill.errors import AgentDistillError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import make_chat_model
from agentdistill.models.base import ChatModel, Completion, Message, ModelOptions, TokenCallback
from agentdistill.models.sampling import SampledModel
from agentdistill.trajectory import Run

# Why a student's call is not an example, as the round's figures name it.
PARSE_FAILED, NO_IDS, DUPLICATE = "failed to parse", "no token ids recorded", "duplicate"


class RolloutMismatch(AgentDistillError):
    """A round's rollout dir holds a bench run of other work (another model, items or options)."""


class CappedModel:
    """A model whose calls generate at most `max_tokens` new tokens, whatever the graph asks for.

    The recorded step keeps the graph's own `max_tokens` (the recorder wraps this model); its token record's
    finish says "length" where the cap cut a call.
    """

    def __init__(self, inner: ChatModel, max_tokens: int) -> None:
        self.inner, self.max_tokens, self.spec = inner, max_tokens, inner.spec

    def generate(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 512,
                 temperature: float = 0.0, n: int = 1, seed: int | None = None,
                 on_token: TokenCallback | None = None) -> list[Completion]:  # fmt: skip
        return self.inner.generate(messages, stop=stop, max_tokens=min(max_tokens, self.max_tokens),
                                   temperature=temperature, n=n, seed=seed, on_token=on_token)  # fmt: skip


def round_items(pool: Sequence[Item], round_no: int, per_round: int) -> list[Item]:
    """Round `round_no`'s items (1-based): the next `per_round` of the pool, wrapping around to its start."""
    n = min(per_round, len(pool))
    start = (round_no - 1) * per_round
    return [pool[(start + i) % len(pool)] for i in range(n)]


def rollout(
    run_path: Path, spec: str, items: Sequence[Item], setup: SuiteAgent, store: TrajectoryStore, *,
    options: ModelOptions, temperature: float, max_tokens: int | None, seed: int, progress: bool | None = None,
    meta: Mapping[str, Any] | None = None, user_model: Callable[[str | None], ChatModel] | None = None,
) -> list[ItemResult]:  # fmt: skip
    """The student `spec` answers `items` in `setup`'s graph; a rerun runs only the items without a result.

    Calls the graph makes greedily are sampled at `temperature` (0 keeps them greedy), each with a seed from
    `seed` and its prompt, so a resumed rollout samples what the killed one would have.
    """
    from agentdistill.models.transformers_backend import clear_model_cache

    tag = f"{setup.suite.name}:train"
    wanted = RunSpec(suite=tag, agent=setup.agent, model=spec, item_ids=tuple(i.id for i in items), seed=seed,
                     max_steps=setup.max_steps, options=dict(setup.options), items_sha256=items_digest(items),
                     label=f"on-policy {spec}")  # fmt: skip
    if (run_path / RUN_FILE).exists():
        run_dir = RunDir.open(run_path, repair=True)
        if not run_dir.spec.same_work(wanted):
            raise RolloutMismatch(
                f"{run_path} holds rollouts of other work ({run_dir.spec.model} on {len(run_dir.spec.item_ids)} "
                "items): continue with the settings of the run's onpolicy.json, or pass another --out"
            )
        if not run_dir.pending_ids():
            return run_dir.results()
    else:
        run_dir = RunDir.create(run_path, wanted)
    model: ChatModel = make_chat_model(spec, options)
    try:
        if max_tokens is not None:
            model = CappedModel(model, max_tokens)
        if temperature > 0:
            model = SampledModel(model, temperature=temperature, seed=seed)
        run_meta = {"prompt_hash": prompt_hash(setup.agent, setup.graph_options()), **(meta or {})}
        runner = RunnerConfig(concurrency=1, progress=progress, seed=seed, run_meta=run_meta)
        run_suite(run_dir, items, setup, model, store, runner, model_spec=spec, user_model=user_model, prices={})
    finally:
        clear_model_cache()  # each round runs other weights: free these before training
    return run_dir.results()


def runs_of(results: Sequence[ItemResult], store: TrajectoryStore) -> list[Run]:
    """The recorded runs behind a bench run's results (an item of a session suite has several)."""
    ids = [i for r in results for i in (r.meta.get("run_ids") or ([r.run_id] if r.run_id else []))]
    return [store.get(run_id) for run_id in ids]


def rewards(results: Sequence[ItemResult]) -> list[float]:
    """One reward per item: 1.0 when the suite's metric scored it correct, else 0.0 (errors and timeouts too)."""
    return [1.0 if r.correct else 0.0 for r in results]


def onpolicy_examples(runs: Sequence[Run], roles: Sequence[str]) -> tuple[list[ChatExample], dict[str, int]]:
    """One example per call of `roles` that carries its sampled ids, and how many calls were left out, by reason.

    Wrong runs are kept; a call whose reply failed to parse is left out (it has no trained turn), and so is one
    whose backend recorded no ids (an API model: its tokens are not the student's).
    """
    dropped = {PARSE_FAILED: 0, NO_IDS: 0}
    for run in runs:
        for step in (s for s in run.steps if trainable(s, roles)):
            if step.error is not None and step.error.kind in FORMAT_ERRORS:
                dropped[PARSE_FAILED] += 1
            elif token_exact_record(step) is None:
                dropped[NO_IDS] += 1
    exact = [e for e in examples_from_runs(runs, label="positive", roles=roles, token_exact=True) if e.tokens]
    examples, dropped[DUPLICATE] = dedupe(exact)
    return examples, dropped
