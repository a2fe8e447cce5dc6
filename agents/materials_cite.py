"""Citations of the materials agent: the material ids an answer rests on, checked against what the tools returned.

A small supervisor drops the id its data assistant reported, or writes one no tool ever returned (Qwen2.5-Coder-0.5B
answered a molar-mass question "55.8450 (mp-558450)"). So the ids of the final answer are settled here, not by the
model: an id no observation of this question holds is taken out, and when the answer then names no observed id,
the observed record lines that state the answer's value (a number, to the digits the answer gives, or an ordering
label) are cited. When too many lines state it (every metal's band gap is 0) none is picked: citing one of them
would be a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agentdistill.models.base import Message

MATERIAL_ID = re.compile(r"\b(?:mp|mvc)-\d+\b")
# a number written on its own, not the digits of a formula or an id (Fe2O3, mp-19770); the suite metric uses it too
NUMBER = re.compile(r"(?<![\w.\-])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_ORDERING = re.compile(r"\b(NM|FM|FiM|AFM)\b")
_CITED_ID = re.compile(r"\s*\(\s*((?:mp|mvc)-\d+)\s*\)|\b(?:mp|mvc)-\d+\b")
MAX_SUPPORTING = 3  # more record lines than this stating the value: which one the answer used is not known


@dataclass(frozen=True)
class Citation:
    answer: str  # the answer as shown: unverified ids out, supporting ids in
    sources: tuple[str, ...]  # observed ids the answer rests on
    unverified: tuple[str, ...]  # ids the model wrote that no observation of this question holds


def observations(messages: Sequence[Message], task: str) -> list[str]:
    """The tool results of an assistant's turn: the user messages after the one that asks `task`."""
    asked = [i for i, m in enumerate(messages) if m["role"] == "user" and task in str(m["content"])]
    start = asked[0] + 1 if asked else len(messages)
    return [str(m["content"]) for m in messages[start:] if m["role"] == "user"]


def cite(answer: str, observed: Sequence[str], question: str = "") -> Citation:
    """The answer with its ids checked against `observed` (tool results), as the module docstring says."""
    seen = set(MATERIAL_ID.findall("\n".join(observed)))
    named = list(dict.fromkeys(MATERIAL_ID.findall(answer)))
    unverified = tuple(i for i in named if i not in seen)
    verified = tuple(i for i in named if i in seen)
    text = answer
    if unverified:
        text = _CITED_ID.sub(lambda m: "" if _id_of(m) in unverified else m.group(0), text).strip()
    if verified:
        return Citation(text, verified, unverified)
    sources = supporting_ids(text, observed, question)
    if sources:
        text = f"{text} ({', '.join(sources)})"
    return Citation(text, sources, unverified)


def supporting_ids(answer: str, observed: Sequence[str], question: str = "") -> tuple[str, ...]:
    """Ids of the observed record lines stating the answer's value; those the question names go first and alone."""
    values = [(float(m), _decimals(m)) for m in NUMBER.findall(answer.replace(",", ""))]
    labels = set(_ORDERING.findall(answer))
    if not values and not labels:
        return ()
    support: list[str] = []
    for block in _record_blocks(observed):
        ids = MATERIAL_ID.findall(block)
        numbers = [float(m) for m in NUMBER.findall(MATERIAL_ID.sub(" ", block).replace(",", ""))]
        states_value = any(round(n, d) == v for v, d in values for n in numbers)
        states_label = any(re.search(rf"ordering\W{{1,3}}{label}\b", block) for label in labels)
        if (states_value or states_label) and ids[0] not in support:
            support.append(ids[0])
    asked = [i for i in support if i in MATERIAL_ID.findall(question)]
    if asked:
        return tuple(asked)
    return tuple(support) if len(support) <= MAX_SUPPORTING else ()


def _record_blocks(observed: Sequence[str]) -> list[str]:
    """Texts about one record each: a whole observation naming one id (a record's fields, its moduli), else each
    line naming one id (a search listing)."""
    blocks = []
    for text in observed:
        if len(set(MATERIAL_ID.findall(text))) == 1:
            blocks.append(text)
        else:
            blocks += [line for line in text.splitlines() if len(set(MATERIAL_ID.findall(line))) == 1]
    return blocks


def _decimals(number: str) -> int:
    mantissa = number.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _id_of(match: re.Match[str]) -> str:
    return match.group(1) or match.group(0)
