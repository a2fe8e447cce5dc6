"""`Item`: one benchmark question, the shape every loader in datasets.py returns and the runner consumes."""

from __future__ import annotations

from collections.abc import Mapping
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
