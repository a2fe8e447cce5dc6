"""Few-shot exemplars retrieved from the agent's own solved runs: the closest solved questions, replayed whole.

A hand-written example shows a style the model has to translate into its own (two worked examples cut
GSM8K CodeAct from 46 to 29 of 100); a solved run of the same agent is already in the exact format, with
the model's own phrasing, code and Observations. The bank is a distillation dataset (`distill collect`
writes one: `data/train.jsonl`, one example per model call); each run's last call holds its whole
conversation, which is replayed as earlier turns before the new task. Questions are matched by BM25 over
their lower-case words (numbers and names left out: the story, not its figures or people, says which
solution carries over), so no embedder is loaded and the choice is the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentdistill.errors import AgentDistillError
from agentdistill.models.base import Message

_WORD = re.compile(r"[A-Za-z]{3,}")
_STOP = frozenset(
    "the and for are was were has have had with that this than then what how many much does did each "
    "his her their its they she him them you your from into per all more less some any".split()
)


class ExemplarsError(AgentDistillError):
    """An exemplar file that cannot be read: names the file, the line and what to pass instead."""


@dataclass(frozen=True)
class Exemplar:
    """One solved run: its question and its conversation after the system prompt (task, replies, observations)."""

    question: str
    turns: tuple[Message, ...]


def _words(text: str) -> list[str]:
    """Content words; capitalised ones go too: names ("Janet") match stories that share nothing else."""
    return [w for w in _WORD.findall(text) if w.islower() and w not in _STOP]


class ExemplarBank:
    """Solved runs to draw few-shot exemplars from; `select(question, k)` gives the k closest."""

    def __init__(self, exemplars: Sequence[Exemplar], *, digest: str = "", k1: float = 1.2, b: float = 0.75) -> None:
        if not exemplars:
            raise ExemplarsError("an exemplar bank needs at least one solved run")
        self.exemplars = list(exemplars)
        self.digest = digest  # sha256 of the source file: part of the agent's prompt hash
        self.k1, self.b = k1, b
        self._docs = [Counter(_words(e.question)) for e in self.exemplars]
        self._lengths = [sum(doc.values()) for doc in self._docs]
        self._mean_length = sum(self._lengths) / len(self._lengths) or 1.0
        df = Counter(word for doc in self._docs for word in doc)
        n = len(self._docs)
        self._idf = {word: math.log(1 + (n - count + 0.5) / (count + 0.5)) for word, count in df.items()}

    @classmethod
    def load(cls, path: str | Path) -> ExemplarBank:
        """From a distillation dataset JSONL (or a `distill` out dir / data dir holding `train.jsonl`)."""
        file = exemplar_file(path)
        raw = file.read_bytes()
        longest: dict[str, tuple[str, list[Message]]] = {}
        for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key, question, messages = row.get("run_id") or row["question"], row["question"], row["messages"]
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise ExemplarsError(
                    f"{file}, line {number}: not a dataset example ({exc}); each line needs 'question' and "
                    "'messages' as `distill collect` writes them"
                ) from None
            if row.get("label", "positive") != "positive":
                continue  # a REDI negative shows what not to do
            if key not in longest or len(messages) > len(longest[key][1]):
                longest[key] = (question, messages)
        exemplars = [
            Exemplar(question, tuple(m for m in messages if m.get("role") != "system"))
            for question, messages in longest.values()
            if messages and messages[-1].get("role") == "assistant"
        ]
        if not exemplars:
            raise ExemplarsError(f"{file}: no solved run to draw exemplars from (no positive example ends in a reply)")
        return cls(exemplars, digest=hashlib.sha256(raw).hexdigest())

    def score(self, question: str, index: int) -> float:
        doc, length = self._docs[index], self._lengths[index]
        total = 0.0
        for word in set(_words(question)):
            tf = doc.get(word, 0)
            if tf:
                norm = tf + self.k1 * (1 - self.b + self.b * length / self._mean_length)
                total += self._idf[word] * tf * (self.k1 + 1) / norm
        return total

    def select(self, question: str, k: int) -> list[Exemplar]:
        """The k best-matching solved runs, best first; the question itself (a train item) never comes back."""
        same = " ".join(question.split())
        scored = [
            (self.score(question, i), -i) for i, e in enumerate(self.exemplars) if " ".join(e.question.split()) != same
        ]
        return [self.exemplars[-i] for _, i in sorted(scored, reverse=True)[:k]]


def exemplar_file(path: str | Path) -> Path:
    """The dataset JSONL `path` names: the file itself, or `train.jsonl` in a data dir or a `distill` out dir."""
    file = Path(path)
    if file.is_dir():
        file = next((c for c in (file / "data" / "train.jsonl", file / "train.jsonl") if c.is_file()), file)
    if not file.is_file():
        raise ExemplarsError(
            f"exemplars: {path} is not a file or a dir with train.jsonl; pass a dataset JSONL written by "
            "`distill collect` (e.g. runs/NAME/data/train.jsonl)"
        )
    return file


def exemplar_turns(exemplars: Sequence[Exemplar]) -> list[Message]:
    """The chosen runs as earlier turns of the conversation, most similar last (nearest the new task)."""
    return [dict(m) for e in reversed(list(exemplars)) for m in e.turns]  # type: ignore[misc]
