"""`Item`: one benchmark question, the shape every loader in datasets.py returns and the runner consumes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentdistill.memory.documents import Document


@dataclass(frozen=True)
class Item:
    """A question with its gold answers and, for retrieval suites, the passages it brings to the suite's KB.

    `answers` holds every accepted alias (the first is the canonical one shown in reports). An item with
    `answerable=False` is scored right only when the agent says "insufficient information".
    """

    id: str
    question: str
    answers: tuple[str, ...]
    answerable: bool = True
    contexts: tuple[Document, ...] = ()  # pooled with the other items' into one KB per suite
    meta: Mapping[str, Any] = field(default_factory=dict)  # type, level, hops, ... (kept in the results)

    @property
    def answer(self) -> str:
        return self.answers[0] if self.answers else ""


def items_digest(items: Sequence[Item]) -> str:
    """sha256 of what decides each item's score (id, question, answers, answerable), in order: a resumed run
    whose data file was edited under the same name is told apart from the run it continues."""
    rows = [[item.id, item.question, list(item.answers), item.answerable] for item in items]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()
