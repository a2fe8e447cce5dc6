"""Answer metrics: SQuAD-normalised EM/F1 over answer aliases, math equivalence, "insufficient information".

Pure functions of (prediction, gold answers): the runner stores what they return with each run, so a
score can always be recomputed from the trajectory store.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from agentdistill.benchmarks.materials_metric import materials_score
from agentdistill.benchmarks.score import Score
from agentdistill.tools.math import MathInputError, math_equivalent

INSUFFICIENT = "insufficient information"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_BOXED = re.compile(r"\\boxed\s*\{")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# Phrases that mark an abstention anywhere in a prediction; the short words only when they are the whole answer,
# so "Unknown Pleasures" or "the Tomb of the Unknown Soldier" stay real answers.
_ABSTAIN = ("insufficient information", "not enough information", "cannot be determined", "cannot answer")
_ABSTAIN_WORDS = {"unknown", "unanswerable", "insufficient"}
# MATH-500 answer conventions that math_equivalent does not read (see canonical_math_answer).
_THIN_SPACE = re.compile(r"\\[!,;:]|\\ ")
_DEGREES = re.compile(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)|°|\\degree|\s+degrees?$")
_UNIT_TEXT = re.compile(r"\s*\\(?:text|mbox|mathrm|textrm)\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?\d\}?)?$")
_MATH_WORDS = {"pi", "sqrt", "infty", "inf", "infinity", "oo", "log", "ln", "exp", "sin", "cos", "tan", "cot"}
_UNIT_WORDS = re.compile(
    rf"([-+]?\d[\d,]*(?:\.\d+)?)\s*(?:(?!(?:{'|'.join(sorted(_MATH_WORDS))})\b)[A-Za-z]{{2,}}\.?\s*)+(?:\^\{{?\d\}}?)?"
)
_BASE_SUBSCRIPT = re.compile(r"([0-9A-F]*\d[0-9A-F]*)_\{?(\d+)\}?")
_MIXED = re.compile(r"(-?\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}")
_MATRIX = re.compile(r"\\begin\{[pbv]?matrix\}(.*?)\\end\{[pbv]?matrix\}", re.S)
_PI = re.compile(r"\\pi(?![A-Za-z])|(?<![A-Za-z\\])pi(?![A-Za-z])")
_CHOICE = re.compile(r"\(?([A-E])\)?")
_WORDS = re.compile(r"[A-Za-z][A-Za-z ]*")
_SYMPY_FAULTS = (MathInputError, ArithmeticError, AttributeError, TypeError, ValueError, RecursionError)


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
    gold_abstains = any(_is_abstention_gold(g) for g in golds)
    if is_abstention(prediction) or gold_abstains:
        correct = is_abstention(prediction) and gold_abstains
        return Score(correct, float(correct), float(correct))
    em = max((exact_match(prediction, g) for g in golds), default=0.0)
    f1 = max((f1_score(prediction, g) for g in golds), default=0.0)
    return Score(em == 1.0, em, f1)


def is_abstention(text: str) -> bool:
    """Whether an answer declines: "Insufficient information.", "It cannot be determined ...", "Unknown"."""
    low = text.lower()
    return any(phrase in low for phrase in _ABSTAIN) or normalize_answer(text) in _ABSTAIN_WORDS


def _is_abstention_gold(gold: str) -> bool:
    """A gold abstains only as a whole answer: a real answer may contain "unknown" or "cannot answer"."""
    norm = normalize_answer(gold)
    return norm in _ABSTAIN_WORDS or any(norm == normalize_answer(p) for p in _ABSTAIN)


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
    correct = any(math_equal(c, g) for c in candidates if c for g in golds)
    # Not SQuAD's exact_match: it strips punctuation, so "2.0" matched the gold "20" and "-5" matched "5".
    same_text = any(" ".join(prediction.lower().split()) == " ".join(g.lower().split()) for g in golds)
    return Score(correct, float(correct or same_text), float(correct))


def math_equal(prediction: str, gold: str) -> bool:
    """`math_equivalent` over the MATH-style canonical forms of both answers.

    Adds what competition answers need: intervals keep their bracket types, unbracketed lists and \\{sets\\}
    match in any order (with \\pm expanded), word answers ignore case, and a sympy fault on odd input is
    a wrong answer, not a crashed run.
    """
    if prediction.strip() == gold.strip():
        return True
    p, g = canonical_math_answer(prediction), canonical_math_answer(gold)
    return bool(p and g) and _forms_equal(p, g)


def canonical_math_answer(text: str) -> str:
    """Rewrite MATH-500 answer conventions into forms `math_equivalent` reads.

    Thin spaces and `,\\!` thousands separators, `\\$`, degrees, trailing unit text (`5.4 \\text{ cents}`,
    `864 \\mbox{ inches}^2`, `18 dollars`), base subscripts (`2516_8`), mixed numbers (`137 \\frac{1}{2}`),
    matrices and vectors as tuples, `\\pi` as a factor (so `20000/\\pi` is not read as a unit), answer
    choices (`\\text{(C)}` -> `C`) and word answers in lower case.
    """
    text = text.strip().strip("$").strip()
    text = _MATRIX.sub(lambda m: _matrix_tuple(m[1]), text)  # before thin spaces: `\\\\ ` ends a matrix row
    text = re.sub(r",\\!\s*", ",", text)
    text = _THIN_SPACE.sub(" ", text).replace("\\$", "").replace("\\left", "").replace("\\right", "")
    text = _DEGREES.sub("", text).strip()
    text = text.lstrip("$").strip()
    if (unit := _UNIT_TEXT.search(text)) and text[: unit.start()].strip():
        text = text[: unit.start()].strip()
    if match := _UNIT_WORDS.fullmatch(text):
        text = match[1]
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if match := _BASE_SUBSCRIPT.fullmatch(text):
        text = match[1]
    if match := _MIXED.fullmatch(text):
        whole, num, den = int(match[1]), int(match[2]), int(match[3])
        text = f"{whole}{'-' if whole < 0 else '+'}{num}/{den}"
    text = _PI.sub("(pi)", text)
    inner = re.sub(r"\\text(?:bf)?\{(.*)\}", r"\1", text).strip()
    if match := _CHOICE.fullmatch(inner):
        return match[1]
    if _is_word_answer(inner):
        return " ".join(inner.lower().split())
    return text


def _matrix_tuple(body: str) -> str:
    rows = [r.strip() for r in re.split(r"\\\\", body) if r.strip()]
    cells = [[c.strip() for c in r.split("&")] for r in rows]
    if all(len(r) == 1 for r in cells):  # a column vector reads as a tuple
        return "(" + ", ".join(r[0] for r in cells) + ")"
    return "(" + ", ".join("(" + ", ".join(r) + ")" for r in cells) + ")"


def _forms_equal(prediction: str, gold: str) -> bool:
    if _is_word_answer(prediction) or _is_word_answer(gold):
        return prediction.lower() == gold.lower()
    if _is_interval(gold) or _is_interval(prediction):
        if (prediction[:1], prediction[-1:]) != (gold[:1], gold[-1:]):
            return False
    unordered_p, unordered_g = _unordered_parts(prediction), _unordered_parts(gold)
    if unordered_p is not None or unordered_g is not None:
        parts_p, parts_g = unordered_p or [prediction], unordered_g or [gold]
        if len(parts_p) != len(parts_g):
            return False
        return _match_all(parts_p, parts_g)
    return _equivalent(prediction, gold)


def _is_interval(text: str) -> bool:
    """`[a, b)`, `(a, b]`, `[a, b]`: bracket types carry meaning, unlike the parentheses of a point."""
    ends = text[:1] + text[-1:]
    return len(text) > 2 and ends[0] in "([" and ends[1] in ")]" and ("[" in ends or "]" in ends)


def _is_word_answer(text: str) -> bool:
    """`east`, `even`, `Navin`: compared as words. Short names (x, pi, oo) stay math."""
    return bool(_WORDS.fullmatch(text)) and len(text.strip()) > 2 and text.strip().lower() not in _MATH_WORDS


def _unordered_parts(text: str) -> list[str] | None:
    """Elements of a solution list (`-2, 1`, `\\{1, 2\\}`, `1 \\pm \\sqrt{19}`), or None for anything else."""
    if text.startswith("\\{") and text.endswith("\\}"):
        body = text[2:-2]
    elif text[:1] in "([" or "\\pm" not in text and "," not in text:
        return None
    else:
        body = text
    parts, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    parts.append(body[start:].strip())
    expanded: list[str] = []
    for part in parts:
        head, sep, tail = part.partition("\\pm")
        expanded.extend([f"{head}+{tail}", f"{head}-{tail}"] if sep and head.strip() else [part])
    return expanded if len(expanded) > 1 else None


def _match_all(predictions: list[str], golds: list[str]) -> bool:
    """Each prediction pairs with a different gold (greedy: answer lists are short and rarely ambiguous)."""
    left = list(golds)
    for p in predictions:
        hit = next((g for g in left if _equivalent(p, g)), None)
        if hit is None:
            return False
        left.remove(hit)
    return True


def _equivalent(a: str, b: str) -> bool:
    try:
        return math_equivalent(a, b)
    except _SYMPY_FAULTS:  # sympy chokes on some shapes (e.g. a tuple raised to a power): not this answer
        return False


METRICS = {"qa": qa_score, "math": math_score, "materials": materials_score}
