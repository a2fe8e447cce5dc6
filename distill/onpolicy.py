"""On-policy distillation: the student runs in the agent graph, and the teacher scores the student's own tokens.

Each round works in its own dir, OUT/round-NN/:

    rollouts/       bench run of the current student (base + the previous round's adapter) on the round's train
                    items, recorded to the trajectory store with its sampled token ids and scored by the suite
    examples.jsonl  every call of those runs that carries its ids, right or wrong (onpolicy_rollout.py)
    teacher-topk/   the teacher's top-k log-probs at each of those tokens (kd.TeacherCache)
    train/          reverse KL to the teacher, plus the task reward when asked (onpolicy_loss.py), starting from
                    the previous round's adapter
    round.json      the round's figures, written last and atomically: a round that has it is done and skipped

OUT/rounds.jsonl lists the finished rounds' figures; OUT/onpolicy.json the settings, checked on a rerun. A killed
round resumes where it stopped: the rollouts run their pending items, the cache its missing shards, the trainer
continues from its last checkpoint.

The teacher must tokenise like the student: its top-k is read at the student's token ids. A teacher with another
tokenizer needs a cross-tokenizer method (sequence-level, `distill run --method sft`), not this one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.suite_run import SuiteAgent
from agentdistill.distill.checkpoints import read_metrics
from agentdistill.distill.data import agent_roles, encode_examples, save_examples
from agentdistill.distill.kd import KD_KINDS, KDKind, TeacherCache, kd_loss
from agentdistill.distill.onpolicy_loss import advantages, mean_reward, onpolicy_loss
from agentdistill.distill.onpolicy_rollout import onpolicy_examples, rewards, rollout, round_items, runs_of
from agentdistill.distill.tokenizer_fingerprint import KDTokenizerMismatch, tokenizer_fingerprint
from agentdistill.distill.train_config import TrainConfig
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import ChatModel, ModelOptions
from agentdistill.models.weights import base_weights, local_weights
from agentdistill.paths import atomic_write

Say = Callable[[str], None]
NOT_EXACT, TOO_LONG = "ids do not decode to the text", "over max_len"
RESUME_FREE = frozenset({"rounds"})  # a rerun may ask for more (or fewer) rounds; everything else must match


class CrossTokenizerTeacher(KDTokenizerMismatch):
    """The teacher tokenises differently from the student, so it cannot score the student's token ids."""

    def __init__(self, teacher: str | Path, student: str | Path, why: str) -> None:
        AgentDistillError.__init__(
            self,
            f"teacher {teacher} and student {student} do not share a tokenizer ({why}). On-policy distillation reads "
            "the teacher's distribution at the student's own token ids: pick a teacher of the student's family "
            "(e.g. SmolLM2-360M for SmolLM2-135M). A teacher with another tokenizer needs a cross-tokenizer method, "
            "e.g. sequence-level distillation on its trajectories (`agentdistill distill run --method sft`).",
        )
        self.teacher, self.student = str(teacher), str(student)


class OnPolicyMismatch(AgentDistillError):
    """OUT holds an on-policy run with other settings."""


class NoOnPolicyExamples(AgentDistillError):
    """A round's rollouts gave no call to train on."""


@dataclass(frozen=True, kw_only=True)
class OnPolicyConfig:
    """One on-policy distillation; saved as OUT/onpolicy.json and compared on a rerun."""

    rounds: int = 3  # rollout -> teacher -> train cycles; a rerun with more rounds continues after the last one
    items_per_round: int = 8  # train items each round rolls out, the next ones of the pool (wrapping around)
    kd_kind: KDKind = "reverse"  # reverse = KL(student || teacher), mode-seeking, as GKD uses on-policy
    top_k: int = 20  # teacher tokens cached per position; the rest of its mass is one bucket
    reward_weight: float = 0.0  # KDRL: weight of the REINFORCE term on the suite's score (onpolicy_loss.py); 0 = KD
    temperature: float = 1.0  # rollouts sample the graph's greedy calls at this; 0 = greedy rollouts
    max_tokens: int | None = None  # cap on the new tokens of every rollout call; None = what the graph asks
    seed: int = 0  # round r samples with seed + r
    train: TrainConfig = field(default_factory=TrainConfig)  # each round's training run (epochs over its examples)

    def __post_init__(self) -> None:
        for name in ("rounds", "items_per_round", "top_k"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.kd_kind not in KD_KINDS:
            raise ConfigError("kd_kind", self.kd_kind, f"one of {', '.join(KD_KINDS)}")
        if self.reward_weight < 0:
            raise ConfigError("reward_weight", self.reward_weight, "a weight >= 0 (0 = pure distillation)")
        if self.temperature < 0:
            raise ConfigError("temperature", self.temperature, "0 (greedy rollouts) or a sampling temperature > 0")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError("max_tokens", self.max_tokens, "a positive number of tokens, or unset")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"train": self.train.to_dict()}


@dataclass(frozen=True)
class RoundResult:
    """One finished round's figures: OUT/round-NN/round.json and a line of OUT/rounds.jsonl."""

    round: int
    model: str  # the spec the rollouts ran: the previous round's adapter over the base
    items: int  # rollouts (items answered)
    mean_reward: float  # mean score of the rollouts: the REINFORCE baseline
    examples: int  # calls trained on
    dropped: dict[str, int]  # calls left out, by reason
    kd_loss: float | None  # mean KL to the teacher over the round's training steps
    reward_term: float | None  # mean REINFORCE term over the steps (None when reward_weight is 0)
    steps: int  # optimizer steps
    final_dir: str  # the adapter (LoRA) or model dir the round trained
    seconds: float  # wall time of the call that finished the round

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class OnPolicy:
    """Runs the rounds of an OnPolicyConfig into `out`; `run` skips finished rounds and resumes a killed one."""

    def __init__(
        self, config: OnPolicyConfig, *, student: str, teacher: str, setup: SuiteAgent, items: Sequence[Item],
        store: TrajectoryStore, out: Path, cache: Path, options: ModelOptions | None = None, say: Say = print,
        progress: bool | None = None, user_model: Callable[[str | None], ChatModel] | None = None,
    ) -> None:  # fmt: skip
        if not items:
            raise ConfigError("items", 0, "at least one train item to roll out")
        self.config, self.setup, self.items, self.store = config, setup, list(items), store
        self.out, self.say, self.progress, self.user_model = Path(out), say, progress, user_model
        self.options = options or ModelOptions()
        self.student, self.teacher = student, teacher
        self.base, self.adapter = local_weights(student, cache)  # an adapter student continues its adapter
        self.teacher_dir = base_weights(teacher, cache)

    def run(self) -> list[RoundResult]:
        self._check_settings()
        why = tokenizer_fingerprint(self.teacher_dir).difference(tokenizer_fingerprint(self.base))
        if why is not None:
            raise CrossTokenizerTeacher(self.teacher, self.student, why)
        done: list[RoundResult] = []
        for round_no in range(1, self.config.rounds + 1):
            marker = self._dir(round_no) / "round.json"
            if marker.is_file():
                done.append(RoundResult(**json.loads(marker.read_text(encoding="utf-8"))))
                self.say(f"round {round_no}/{self.config.rounds}: done already ({_figures(done[-1])})")
                continue
            done.append(self.run_round(round_no, done[-1] if done else None))
            with atomic_write(self.out / "rounds.jsonl") as handle:
                handle.writelines(json.dumps(r.to_dict()) + "\n" for r in done)
        return done

    def run_round(self, round_no: int, previous: RoundResult | None) -> RoundResult:
        """Roll out, cache the teacher, train; round.json is written last."""
        from transformers import AutoTokenizer

        from agentdistill.distill.trainer import train

        started, config, rdir = time.monotonic(), self.config, self._dir(round_no)
        base, init, spec = self._student_at(previous)
        items = round_items(self.items, round_no, config.items_per_round)
        head = f"round {round_no}/{config.rounds}:"
        self.say(f"{head} {len(items)} rollouts of {spec} (agent {self.setup.agent})")
        results = rollout(rdir / "rollouts", spec, items, self.setup, self.store, options=self.options,
                          temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed + round_no,
                          progress=self.progress, meta={"onpolicy_round": round_no, "onpolicy_out": str(self.out)},
                          user_model=self.user_model)  # fmt: skip
        reward = mean_reward(rewards(results))
        examples, dropped = onpolicy_examples(runs_of(results, self.store), agent_roles(self.setup.agent))
        save_examples(rdir / "examples.jsonl", examples)
        tokenizer = AutoTokenizer.from_pretrained(base)
        encoded, dropped[TOO_LONG] = encode_examples(tokenizer, examples, config.train.max_len)
        exact = [e for e in encoded if e.token_exact]
        dropped[NOT_EXACT] = len(encoded) - len(exact)
        left_out = ", ".join(f"{n} {why}" for why, n in dropped.items() if n) or "none"
        self.say(f"{head} mean reward {reward:.3f}; {len(exact)} examples of the student's own ids (left out: "
                 f"{left_out})")  # fmt: skip
        if not exact:
            raise NoOnPolicyExamples(
                f"round {round_no}: no call of the {len(results)} rollouts can be trained on ({left_out}). The "
                "student must run on a backend that records token ids (it runs as hf:DIR here, on transformers); "
                "raise --max-len if the examples were too long, or roll out more --items."
            )
        self.say(f"{head} teacher top-{config.top_k} over the {len(exact)} examples ({self.teacher_dir})")
        device = None if config.train.device == "auto" else config.train.device
        cache = TeacherCache.build(self.teacher_dir, exact, rdir / "teacher-topk", k=config.top_k, device=device,
                                   progress=self.progress, student_dir=base)  # fmt: skip
        by_example = {e.id: float(e.meta.get("score") or 0.0) for e in examples}
        loss = onpolicy_loss(kd_loss(cache, config.kd_kind), config.reward_weight, advantages(by_example, reward))
        objective = f"{config.kd_kind} KL" + (f" + {config.reward_weight:g} x reward" if config.reward_weight else "")
        self.say(f"{head} training on {objective}" + (f", from {init}" if init else ""))
        trained = train(base, exact, [], config.train, rdir / "train", loss_fn=loss, init_adapter=init,
                        progress=self.progress)  # fmt: skip
        rows = read_metrics(trained.metrics_path)
        result = RoundResult(
            round=round_no, model=spec, items=len(results), mean_reward=reward, examples=len(exact), dropped=dropped,
            kd_loss=_mean(rows, "kl"), reward_term=_mean(rows, "reward_term"), steps=trained.steps,
            final_dir=str(trained.final_dir.resolve()), seconds=round(time.monotonic() - started, 2),
        )  # fmt: skip
        with atomic_write(rdir / "round.json") as handle:
            json.dump(result.to_dict(), handle, indent=2)
        self.say(f"{head} {_figures(result)}")
        return result

    def _student_at(self, previous: RoundResult | None) -> tuple[Path, Path | None, str]:
        """(base dir to train, adapter to start from, spec the rollouts run) for the round after `previous`."""
        if previous is None:
            return self.base, self.adapter, f"hf:{self.adapter or self.base}"
        final = Path(previous.final_dir)
        if self.config.train.lora:
            return self.base, final, f"hf:{final}"
        return final, None, f"hf:{final}"  # a full fine-tune: the previous round's model is the next base

    def _dir(self, round_no: int) -> Path:
        return self.out / f"round-{round_no:02d}"

    def _check_settings(self) -> None:
        """Write OUT/onpolicy.json, or check that the one there asks for the same run (rounds may change)."""
        ours = {"student": self.student, "teacher": self.teacher, "agent": self.setup.agent,
                "suite": self.setup.suite.name, "options": dict(self.setup.options), "max_steps": self.setup.max_steps,
                "config": self.config.to_dict()}  # fmt: skip
        ours = json.loads(json.dumps(ours))  # tuples as lists, as the file has them
        path = self.out / "onpolicy.json"
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            for key, value in _flat(ours).items():
                old = _flat(stored).get(key)
                if key.removeprefix("config.") not in RESUME_FREE and old != value:
                    raise OnPolicyMismatch(
                        f"{self.out} holds an on-policy run with {key} = {old!r}, not {value!r}: continue it with "
                        f"the same settings (see {path}), or pass another --out."
                    )
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            json.dump(ours, handle, indent=2)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in ("config", "train"):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(row[key]) for row in rows if key in row]
    return sum(values) / len(values) if values else None


def _figures(result: RoundResult) -> str:
    kl = "n/a" if result.kd_loss is None else f"{result.kd_loss:.4g}"
    return f"mean reward {result.mean_reward:.3f}, kd loss {kl}, {result.examples} examples, {result.steps} steps"
