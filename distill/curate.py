"""Curation: grade each train question by the teacher's pass rate, and choose among its correct runs by a rule.

A question the teacher answered k times (repeated collections at a temperature, or several teachers' runs
kept apart by the model filter) has a pass rate: the share of those attempts that scored. Its difficulty is a
bucket of that rate (as DeepDistill grades questions). Among several correct runs of one question, which one
to train on is a choice ('Not All Correct Answers Are Equal'): the shortest, the one with the fewest tool
errors, or the one the teacher itself found most likely (mean log-probability per sampled token, recorded
by backends that report it: llama-server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from agentdistill.distill.chat_examples import FORMAT_ERRORS, normalize_question, trainable
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.trajectory import Run

CHOICE_RULES = ("all", "shortest", "fewest_errors", "logprob")
DIFFICULTIES = ("easy", "medium", "hard", "unsolved")


class NoLogProbs(AgentDistillError):
    """`--choose logprob` over runs whose backend recorded no log-probabilities."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} has no recorded log-probabilities, so --choose logprob cannot rank it. Collect with a "
            "local model on the llama-server engine (--concurrency > 1), which records each sampled token's "
            "log-probability, or choose by shortest / fewest_errors."
        )


@dataclass(frozen=True)
class CurateConfig:
    """Which questions by difficulty, and how many of each question's correct runs, by which rule."""

    choose: str = "all"
    per_question: int | None = None  # None: 1 when a rule is chosen, every run for "all"
    difficulty: tuple[str, ...] = ()  # () keeps every difficulty

    def __post_init__(self) -> None:
        if self.choose not in CHOICE_RULES:
            raise ConfigError("choose", self.choose, f"one of {', '.join(CHOICE_RULES)}")
        if self.per_question is not None and self.per_question < 1:
            raise ConfigError("per_question", self.per_question, "a positive number of runs per question")
        bad = [d for d in self.difficulty if d not in DIFFICULTIES]
        if bad:
            raise ConfigError("difficulty", ",".join(bad), f"a subset of {', '.join(DIFFICULTIES)}")

    @property
    def active(self) -> bool:
        return self.choose != "all" or self.per_question is not None or bool(self.difficulty)


def question_key(run: Run) -> str:
    """One question across attempts: its suite item when it has one, else its normalised text."""
    return f"{run.suite}|{run.item_id}" if run.item_id else normalize_question(run.question)


@dataclass(frozen=True)
class PassRate:
    correct: int
    attempts: int

    @property
    def rate(self) -> float:
        return self.correct / self.attempts if self.attempts else 0.0

    @property
    def difficulty(self) -> str:
        """easy >= 0.75 > medium > 0.25 >= hard > 0 = unsolved."""
        if self.correct == 0:
            return "unsolved"
        return "easy" if self.rate >= 0.75 else "hard" if self.rate <= 0.25 else "medium"


def pass_rates(attempts: Iterable[Run], min_score: float) -> dict[str, PassRate]:
    """Per question, how many of its finished, scored runs scored at least `min_score`."""
    counts: dict[str, list[int]] = {}
    for run in attempts:
        if run.status == "running" or run.score is None:
            continue
        pair = counts.setdefault(question_key(run), [0, 0])
        pair[0] += run.score >= min_score
        pair[1] += 1
    return {key: PassRate(c, n) for key, (c, n) in counts.items()}


def completion_tokens(run: Run, roles: Sequence[str]) -> int:
    return sum(s.completion_tokens for s in run.steps if trainable(s, roles))


def tool_errors(run: Run) -> int:
    """Steps that failed other than by format: tool errors, code that raised, timeouts."""
    return sum(1 for s in run.steps if s.error is not None and s.error.kind not in FORMAT_ERRORS)


def mean_logprob(run: Run, roles: Sequence[str]) -> float:
    """Mean log-probability per sampled token over the run's trained calls (the first sample of each)."""
    total, count = 0.0, 0
    for step in (s for s in run.steps if trainable(s, roles)):
        record = step.tokens or {}
        logprobs, ids = record.get("logprobs") or [None], record.get("completions") or [[]]
        if logprobs[0] is None:
            raise NoLogProbs(run.id)
        total, count = total + float(logprobs[0]), count + len(ids[0])
    return total / max(count, 1)


def _ranker(rule: str, roles: Sequence[str]) -> Callable[[Run], tuple[float, ...]]:
    if rule == "shortest":
        return lambda run: (completion_tokens(run, roles),)
    if rule == "fewest_errors":
        return lambda run: (tool_errors(run), completion_tokens(run, roles))
    if rule == "logprob":
        return lambda run: (-mean_logprob(run, roles), completion_tokens(run, roles))
    return lambda run: (run.created_at,)


def curate(
    kept: Sequence[Run], rates: dict[str, PassRate], config: CurateConfig, roles: Sequence[str]
) -> tuple[list[Run], dict[str, int]]:
    """The kept runs after the difficulty filter and the per-question choice; returns (runs, dropped by reason)."""
    dropped = {"difficulty": 0, "choice": 0}
    by_question: dict[str, list[Run]] = {}
    for run in kept:
        rate = rates.get(question_key(run), PassRate(1, 1))
        if config.difficulty and rate.difficulty not in config.difficulty:
            dropped["difficulty"] += 1
            continue
        by_question.setdefault(question_key(run), []).append(run)
    cap = config.per_question or (1 if config.choose != "all" else None)
    rank = _ranker(config.choose, roles)
    out: list[Run] = []
    for runs in by_question.values():
        chosen = sorted(runs, key=rank)[:cap] if cap else runs
        dropped["choice"] += len(runs) - len(chosen)
        out.extend(chosen)
    out.sort(key=lambda run: run.created_at)
    return out, {k: v for k, v in dropped.items() if v}


def difficulty_counts(runs: Sequence[Run], rates: dict[str, PassRate]) -> dict[str, int]:
    """Questions of the selected runs per difficulty bucket (each question once)."""
    seen = {question_key(r): rates.get(question_key(r), PassRate(1, 1)).difficulty for r in runs}
    return {d: n for d in DIFFICULTIES if (n := sum(1 for v in seen.values() if v == d))}
