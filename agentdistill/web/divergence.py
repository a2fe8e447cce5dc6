"""Where two runs of one question part ways: the first step at which they did something different.

Teacher and student in the same graph record the same kinds of steps until one of them writes something else;
from that step on, everything may differ for that reason alone, so the side-by-side page marks it. Two steps
are "the same" when their kind, role, tool, tool arguments and completion text are equal: an observation is the
tool's answer to the arguments and a prompt is built from earlier steps, so neither can differ first.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

from agentdistill.trajectory import Step


def step_signature(step: Step) -> tuple[Any, ...]:
    """What a step did, as far as the comparison goes."""
    return (step.kind, step.role, step.tool, step.tool_args, step.completion)


def first_divergence(a: Sequence[Step], b: Sequence[Step]) -> int | None:
    """Index of the first step where `a` and `b` differ; when one run is a prefix of the other, the first step
    only the longer one has; None when both did exactly the same."""
    for index, (left, right) in enumerate(zip(a, b, strict=False)):
        if step_signature(left) != step_signature(right):
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def aligned(a: Sequence[Step], b: Sequence[Step]) -> list[tuple[Step | None, Step | None]]:
    """The two runs' steps side by side by position; None where one run has no step at that position."""
    return list(zip_longest(a, b))
