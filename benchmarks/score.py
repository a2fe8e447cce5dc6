"""`Score`: what a metric says of one answer (every metric returns it; the runner stores it with the run)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    """`correct` is what accuracy counts; em/f1 are kept for the reports."""

    correct: bool
    em: float
    f1: float

    def as_dict(self) -> dict[str, float]:
        return {"correct": float(self.correct), "em": self.em, "f1": self.f1}
