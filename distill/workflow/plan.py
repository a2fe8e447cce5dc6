"""A `distill run` experiment as data: the plan (saved as OUT/plan.json), its train/eval split and dataset check.

Train and eval items never overlap: a suite with a train partner (gsm8k -> gsm8k-train) trains on the
partner; otherwise the first `eval_limit` items are held out and the next `train_limit` are the train slice.
Items that name what they ask about (meta `groups`, e.g. the materials suites' formulas) are split by it: the kinds
are interleaved (the suite file lists them kind by kind), the first `eval_limit` are held out, and the train slice
takes only items sharing no group with them, so a record's values are never trained on and then asked.
Recommendation suites (`rec-netflix`) are generated sessions: as many are sampled as both slices need, with
the suite's seed, so the eval slice is the suite's own first sessions and no target is in both slices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentdistill.agents.factory import check_agent
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.suites.registry import SUITES, get_suite, load_items
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.distill.curate import CurateConfig
from agentdistill.distill.train_config import TrainConfig
from agentdistill.errors import AgentDistillError, ConfigError

if TYPE_CHECKING:
    from agentdistill.memory.catalog import Catalog

Method = Literal["sft", "kd", "redi"]


class NotEnoughItems(AgentDistillError):
    """The suite holds fewer items than the train and eval slices need."""


class AgentSuiteMismatch(AgentDistillError):
    """recbot runs only on the recommendation suites, and they run only recbot."""

    def __init__(self, agent: str, suite: Suite) -> None:
        rec = ", ".join(name for name, s in SUITES.items() if s.episode is not None)
        if suite.episode is not None:
            what = f"suite {suite.name} recommends catalog titles: distill it with --agent recbot, not {agent}"
        else:
            what = f"the {agent} agent recommends catalog titles: distill it on a recommendation suite ({rec})"
        super().__init__(f"{what}.")


@dataclass(frozen=True)
class DistillPlan:
    """One distillation experiment; the CLI builds it from flags and it is saved as OUT/plan.json."""

    agent: str  # react | codeact | lag | recbot: the graph the teacher runs and the student replaces it in
    suite: str  # eval suite; its train partner (or a disjoint slice of it) is the train split
    teacher: str  # model spec of the teacher
    student: str  # model spec of the student base: local:NAME, hf:DIR
    train_limit: int = 20  # train items the teacher answers
    eval_limit: int = 10  # held-out items all three models answer
    method: Method = "sft"  # sft | kd (needs kd_teacher sharing the student's tokenizer) | redi (SFT, then REDI)
    kd_teacher: str | None = None  # local teacher for logit KD, e.g. local:qwen2.5-coder-1.5b -> 0.5b student
    kd_kind: Literal["forward", "reverse", "taid"] = "forward"
    max_steps: int | None = None  # agent model calls per item (agent default when None)
    concurrency: int = 4  # items in flight during collection and eval (local models: slots of a llama-server)
    engine: Literal["auto", "server", "inproc"] = "auto"  # how local:/gguf: models run (models/engine_model.py)
    engine_slots: int | None = None  # the engine's slots (default: concurrency)
    # How the trained student is evaluated: gguf = exported to an f16 GGUF and run on llama.cpp (6-9x faster on
    # CPU, same greedy tokens); transformers = the merged HF dir; auto = gguf when llama-cpp-python imports.
    student_runtime: Literal["auto", "gguf", "transformers"] = "auto"
    item_timeout_s: float = 900.0
    train: TrainConfig = field(default_factory=TrainConfig)
    embedder: str | None = None  # embedder of the suite's KB or item catalog (None: the packaged MiniLM)
    # `--option KEY=VALUE`: agent options; for rec suites also the simulated user's (user=rule|llm, max_turns,
    # user_model: the LLM user, by default the teacher so all three evaluated models face the same user)
    options: Mapping[str, Any] = field(default_factory=dict)
    # Keep correct runs that recovered from a malformed reply (the bad turn stays as context, with no loss on it).
    # Off by default, as in Agent Distillation; LAG's 0.5B teacher had 5 of its 7 correct HotpotQA runs dropped so.
    keep_parse_errors: bool = False
    # Which runs and calls become training data (defaults: correct runs, every model role of the agent). For
    # recbot's parser alone on ground truth: roles=("parser",), min_score=None,
    # min_metrics={"turn_parse_accuracy": 1.0}.
    roles: tuple[str, ...] = ()
    min_score: float | None = 1.0
    min_metrics: Mapping[str, float] = field(default_factory=dict)
    token_exact: bool = True  # train the teacher's sampled ids where recorded and the tokenizers match
    # The teacher answers each train item `attempts` times: greedily, then sampled at `attempt_temperature`
    # (OUT/collect-2, ...): the pass rates that grade difficulty, and several correct runs to choose from.
    attempts: int = 1
    attempt_temperature: float = 0.7
    choose: str = "all"  # distill/curate.py: all, shortest, fewest_errors, logprob
    per_question: int | None = None
    difficulty: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_agent(self.agent)
        if self.attempts < 1:
            raise ConfigError("attempts", self.attempts, "a positive number of teacher attempts per train item")
        if self.attempts > 1 and self.attempt_temperature <= 0:
            raise ConfigError("attempt_temperature", self.attempt_temperature, "> 0: repeated greedy attempts agree")
        CurateConfig(self.choose, self.per_question, tuple(self.difficulty))  # a bad rule fails before any work
        suite = get_suite(self.suite)
        if (suite.episode is not None) != (self.agent == "recbot"):
            raise AgentSuiteMismatch(self.agent, suite)
        if suite.episode is not None:
            from agentdistill.benchmarks.suites.rec_episode import split_options

            split_options(self.options)  # a bad simulated-user option fails before anything runs
        if self.method not in ("sft", "kd", "redi"):
            raise ConfigError("method", self.method, "sft, kd or redi")
        if self.method == "kd" and not self.kd_teacher:
            raise ConfigError(
                "kd_teacher", None, "a local teacher spec sharing the student's tokenizer for --method kd"
            )


def split_items(
    suite: Suite, data_dir: Path | None, train_limit: int, eval_limit: int, *, catalog: Catalog | None = None
) -> tuple[list[Item], list[Item]]:
    """(train, eval) items that never overlap, as the module docstring describes; rec suites need `catalog`."""
    partner = SUITES.get(f"{suite.name}-train")
    if partner is not None:
        return load_items(partner, data_dir, limit=train_limit), load_items(suite, data_dir, limit=eval_limit)
    if suite.loader == "rec-sessions" and catalog is not None:
        from agentdistill.benchmarks.suites.rec_sessions import session_items

        # Sampling is sequential, so more sessions with the suite's seed start with the suite's own; one
        # sample never repeats a target, so no eval target is trained on.
        items = session_items(catalog, n=eval_limit + train_limit)
    else:
        items = load_items(suite, data_dir, catalog=catalog)
        if items and all(item.meta.get("groups") for item in items):
            return _grouped_split(suite, items, train_limit, eval_limit)
    if len(items) < eval_limit + train_limit:
        raise NotEnoughItems(
            f"suite {suite.name!r} has {len(items)} items: not enough for {eval_limit} eval + {train_limit} train "
            "items; lower --train-limit/--eval-limit."
        )
    return items[eval_limit : eval_limit + train_limit], items[:eval_limit]


def _grouped_split(suite: Suite, items: list[Item], train_limit: int, eval_limit: int) -> tuple[list[Item], list[Item]]:
    by_kind: dict[str, list[Item]] = {}
    for item in items:
        by_kind.setdefault(str(item.meta.get("kind", "")), []).append(item)
    queues = list(by_kind.values())
    interleaved = [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]
    held_out = interleaved[:eval_limit]
    held_groups = {group for item in held_out for group in item.meta["groups"]}
    free = [item for item in interleaved[eval_limit:] if held_groups.isdisjoint(item.meta["groups"])]
    if len(held_out) < eval_limit or len(free) < train_limit:
        raise NotEnoughItems(
            f"suite {suite.name!r}: {len(free)} items share nothing with the {len(held_out)} held-out ones (a train"
            f" item never asks about a held-out item's formula), not enough for {train_limit} train items;"
            " lower --train-limit or --eval-limit."
        )
    return free[:train_limit], held_out


class DatasetMismatch(AgentDistillError):
    """A dataset built from another teacher's runs, or with other prompts, than the plan asks for."""


def check_dataset(info: Mapping[str, Any], *, teacher: str, prompt_hash: str, path: Path) -> None:
    """DatasetMismatch naming both values when `info`'s version is not this plan's teacher and prompts."""
    version = info.get("version") or {}
    teachers = list(version.get("teachers") or [])
    if teachers and teachers != [teacher]:
        raise DatasetMismatch(
            f"{path} was built from runs of {', '.join(teachers)}, but the plan's teacher is {teacher}: delete"
            f" {path.parent} to rebuild it from {teacher}'s runs, or pass --teacher {teachers[0]}."
        )
    hashes = [h for h in version.get("prompt_hashes") or [] if h != "unrecorded"]
    if hashes and hashes != [prompt_hash]:
        raise DatasetMismatch(
            f"{path} was built from runs with prompt_hash {', '.join(hashes)}, but the plan's prompts hash to"
            f" {prompt_hash} (the agent's templates or --option values changed): delete {path.parent} to rebuild"
            " it, and collect again with these prompts."
        )


def plan_dict(plan: DistillPlan) -> dict[str, Any]:
    return dataclasses.asdict(plan)


def plan_from_dict(data: Mapping[str, Any]) -> DistillPlan:
    """The plan an OUT/plan.json holds (fields newer than the file keep their defaults)."""
    known = {f.name for f in dataclasses.fields(DistillPlan)}
    fields = {k: v for k, v in data.items() if k in known}
    train_known = {f.name for f in dataclasses.fields(TrainConfig)}
    fields["train"] = TrainConfig(**{k: v for k, v in (data.get("train") or {}).items() if k in train_known})
    fields["roles"] = tuple(fields.get("roles") or ())
    fields["difficulty"] = tuple(fields.get("difficulty") or ())
    return DistillPlan(**fields)
