"""Scoring answers about materials: a magnetic ordering by its label, a number within a stated tolerance.

The gold answer of a `materials` suite item is either an ordering label (NM, FM, FiM, AFM) or a number. An
ordering answer is right when the prediction names that ordering and no other (a hedge such as "FM or AFM" is
wrong); a number is right when one of the prediction's standalone numbers is within REL_TOL of it (ABS_TOL for
values near zero) and the prediction states at most MAX_NUMBERS of them, so a dump of every field is not
rewarded. Digits inside formulas and material ids (Fe2O3, mp-19770) are not numbers here. A material id gold (a
comparison's winner) is right when the prediction names that id and no other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from agentdistill.agents.materials_cite import MATERIAL_ID, NUMBER
from agentdistill.benchmarks.score import Score

REL_TOL = 0.02  # 2%: the records print 3-9 significant digits; a model copying one rounds to 2-3
ABS_TOL = 0.01  # eV, muB/f.u. or eV/atom near zero
MAX_NUMBERS = 3
ORDERINGS = {
    "NM": ("nm", "non-magnetic", "nonmagnetic", "non magnetic", "not magnetic", "diamagnetic", "paramagnetic"),
    "FM": ("fm", "ferromagnetic", "ferromagnet"),
    "FiM": ("fim", "ferrimagnetic", "ferrimagnet"),
    "AFM": ("afm", "antiferromagnetic", "anti-ferromagnetic", "antiferromagnet"),
}


def orderings_named(text: str) -> set[str]:
    """The ordering labels a text names (by label or by word), e.g. {"FiM"} for "it is ferrimagnetic"."""
    lowered = f" {text.lower()} "
    found = set()
    for label, words in ORDERINGS.items():
        for word in words:
            # a word on its own: "antiferromagnetic" and "anti-ferromagnetic" do not also say "ferromagnetic"
            if re.search(rf"(?<![a-z\-]){re.escape(word)}(?![a-z])", lowered):
                found.add(label)
    return found


def standalone_numbers(text: str) -> list[float]:
    """Numbers written on their own (not the digits of a formula or an id), in order."""
    return [float(m.group()) for m in NUMBER.finditer(text.replace(",", ""))]


def close(value: float, gold: float) -> bool:
    return math.isclose(value, gold, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def materials_score(prediction: str | None, golds: Sequence[str]) -> Score:
    """Correct as the module docstring says; em is the same verdict, f1 1.0 or 0.0 (there is no partial credit)."""
    text = (prediction or "").strip()
    correct = False
    for gold in golds:
        if gold in ORDERINGS:
            correct = orderings_named(text) == {gold}
        elif MATERIAL_ID.fullmatch(gold):
            correct = set(MATERIAL_ID.findall(text.lower())) == {gold}
        else:
            try:
                target = float(gold)
            except ValueError:
                correct = gold.lower() in text.lower()
            else:
                numbers = standalone_numbers(text)
                correct = len(numbers) <= MAX_NUMBERS and any(close(n, target) for n in numbers)
        if correct:
            break
    return Score(correct, float(correct), float(correct))
