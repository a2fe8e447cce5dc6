"""Answer metrics: SQuAD-normalised EM/F1 over answer aliases, math equivalence, "insufficient information".

Pure functions of (prediction, gold answers): the runner stores what they return with each run, so a
score can always be recomputed from the trajectory store.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from agentdistill.tools.math import math_equivalent

INSUFFICIENT = "insufficient information"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_BOXED = re.compile(r"\\boxed\s*\{")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?")
_ABSTAIN = ("insufficient information", "not enough information", "cannot be determined", "unanswerable",
            "cannot answer", "unknown")  # fmt: skip


@dataclass(frozen=True)
class Score:
    """`correct` is what accuracy counts; em/f1 are kept for the reports."""

    correct: bool
    em: float
    f1: float

    def as_dict(self) -> dict[str, float]:
        return {"correct": float(self.correct), "em": self.em, "f1": self.f1}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_score(prediction: str | None, golds: Sequence[str]) -> Score:
    """Best EM/F1 over the aliases; correct = EM. An abstention is right only when the gold says so."""
    prediction = prediction or ""
    if is_abstention(prediction) or any(is_abstention(g) for g in golds):
        correct = is_abstention(prediction) and any(is_abstention(g) for g in golds)
        return Score(correct, float(correct), float(correct))
    em = max((exact_match(prediction, g) for g in golds), default=0.0)
    f1 = max((f1_score(prediction, g) for g in golds), default=0.0)
    return Score(em == 1.0, em, f1)


def is_abstention(text: str) -> bool:
    low = text.lower()
    return any(phrase in low for phrase in _ABSTAIN)


def extract_final_number(text: str) -> str | None:
    """The answer inside the last \\boxed{...}, else the last number in the text (commas, $ and % dropped)."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "").replace("$", "") if numbers else None


def last_boxed(text: str) -> str | None:
    """Contents of the last \\boxed{...}, with nested braces matched."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = depth = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return None


def math_score(prediction: str | None, golds: Sequence[str]) -> Score:
    """Correct when the prediction (whole, or its final number/boxed answer) is equivalent to a gold answer."""
    prediction = (prediction or "").strip()
    candidates = [prediction]
    extracted = extract_final_number(prediction)
    if extracted is not None and extracted != prediction:
        candidates.append(extracted)
    correct = any(math_equivalent(c, g) for c in candidates if c for g in golds)
    em = max((exact_match(prediction, g) for g in golds), default=0.0)
    return Score(correct, float(correct) if correct else em, float(correct))


METRICS = {"qa": qa_score, "math": math_score}
