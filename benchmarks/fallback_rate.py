"""How often per-node students needed their teacher, and what the mix of models cost, from recorded runs.

Every recorded model step names the model that answered it; a step the teacher answered after a student's
reply was rejected also carries `data["fallback"]` (the student's spec, its text and the reason). So the
fallback rate is read from the trajectories alone, for `bench run` and for any report over its runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agentdistill.benchmarks.cost import cost_usd
from agentdistill.benchmarks.results import ItemResult
from agentdistill.errors import StoreError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.trajectory import Run


@dataclass(frozen=True)
class FallbackReport:
    """Who answered the model calls of some runs, and at what cost."""

    calls: int  # model calls in the runs
    student_calls: int  # calls a student was asked first: it answered, or the teacher did after it
    student_answers: int
    fallbacks: Mapping[str, int]  # reason (unparsable, disagree) -> calls the teacher answered instead
    by_node: Mapping[str, Mapping[str, int]]  # node -> {"calls": student calls there, "fallbacks": ...}
    tokens_by_model: Mapping[str, int]  # prompt + completion tokens of the calls each model answered
    cost_usd: float  # each call priced as the model that answered it (students are usually unpriced: 0)
    teacher_cost_usd: float  # the same calls' tokens all priced as the teacher: an estimate of teacher-only cost

    @property
    def fallback_rate(self) -> float:
        """Share of the students' calls that the teacher answered (0.0 when no student was asked)."""
        return sum(self.fallbacks.values()) / self.student_calls if self.student_calls else 0.0

    @property
    def teacher_share(self) -> float:
        """Share of all model calls the teacher answered: the calls of other nodes plus the fallbacks."""
        return (self.calls - self.student_answers) / self.calls if self.calls else 0.0

    @property
    def saved_usd(self) -> float:
        """teacher_cost_usd - cost_usd. Compare accuracy with a teacher-only run before calling it a saving."""
        return self.teacher_cost_usd - self.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fallback_rate": self.fallback_rate, "teacher_share": self.teacher_share,
                "saved_usd": self.saved_usd}  # fmt: skip


def fallback_report(
    runs: Iterable[Run],
    *,
    teacher: str,
    students: Collection[str],
    prices: Mapping[str, Sequence[float]] | None = None,
) -> FallbackReport:
    """The report over the model steps of `runs`; `students` are the specs of the node models.

    A rejected student reply is recorded as text only, so its tokens are in neither figure: both costs count
    the calls that were answered.
    """
    calls = student_calls = student_answers = 0
    fallbacks: Counter[str] = Counter()
    by_node: dict[str, Counter[str]] = {}
    tokens: Counter[str] = Counter()
    cost = teacher_cost = 0.0
    for step in (s for run in runs for s in run.steps if s.kind == "model"):
        calls += 1
        model = step.model or teacher
        tokens[model] += step.prompt_tokens + step.completion_tokens
        cost += cost_usd(model, step.prompt_tokens, step.completion_tokens, prices or {})
        teacher_cost += cost_usd(teacher, step.prompt_tokens, step.completion_tokens, prices or {})
        overruled = step.data.get("fallback") if step.data else None
        if overruled is None and model not in students:
            continue
        student_calls += 1
        node = by_node.setdefault(step.node, Counter(calls=0, fallbacks=0))
        node["calls"] += 1
        if overruled is None:
            student_answers += 1
        else:
            fallbacks[str(overruled.get("reason", "unknown"))] += 1
            node["fallbacks"] += 1
    return FallbackReport(
        calls=calls, student_calls=student_calls, student_answers=student_answers, fallbacks=dict(fallbacks),
        by_node={name: dict(counts) for name, counts in sorted(by_node.items())}, tokens_by_model=dict(tokens),
        cost_usd=cost, teacher_cost_usd=teacher_cost,
    )  # fmt: skip


def result_runs(store: TrajectoryStore, results: Iterable[ItemResult]) -> list[Run]:
    """The recorded runs of some item results (every turn of a session item); runs that never landed are skipped."""
    runs = []
    for result in results:
        for run_id in result.meta.get("run_ids") or ([result.run_id] if result.run_id else []):
            try:
                runs.append(store.get(run_id))
            except StoreError:
                continue
    return runs
