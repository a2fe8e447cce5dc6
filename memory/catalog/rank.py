"""Ranking and explanations over catalog items.

`rank` orders candidates (usually the hard filter's result) by relevance to free text plus how many soft wishes
they meet, then picks greedily with maximal marginal relevance over genres so five recommendations are not five
near-identical titles. `explain` says, per item, which wishes it meets and which it misses; it reuses the
query's own checks, so an explanation can never disagree with the filter. The planner's tools
(`agentdistill.tools.catalog.make_catalog_tools`) wrap both with JSON-able keyword arguments and JSON text results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from agentdistill.memory.catalog.items import CatalogItem, CatalogQuery, key

if TYPE_CHECKING:
    from agentdistill.memory.catalog.store import Catalog

_STOP = frozenset(
    "a an and are about any but can for from give have into just like me more movie movies film films show shows"
    " something some that the their them then there these they this want with without would watch series please"
    " recommend looking".split()
)


class _Retriever(Protocol):
    def retrieve(self, text: str, *, k: int = 20, among: Sequence[str] | None = None) -> list: ...


@dataclass(frozen=True)
class Ranked:
    """One ranked recommendation; `score` combines relevance and fit, the order also weighs diversity."""

    item: CatalogItem
    score: float  # 0.5 * relevance + 0.5 * fit when both apply, else whichever applies (0 when neither)
    relevance: float  # cosine similarity of the item's description to `text`, clipped at 0; 0 without text
    fit: float  # share of the soft wishes the item meets; 1.0 when there are none
    reasons: tuple[str, ...]  # "meets: ...", "misses: ...", "close to the request (0.61)"

    def to_dict(self) -> dict:
        return {
            "id": self.item.id,
            "summary": self.item.summary(),
            "score": round(self.score, 4),
            "relevance": round(self.relevance, 4),
            "fit": round(self.fit, 4),
            "reasons": list(self.reasons),
        }


def rank(
    catalog: Catalog | _Retriever,
    candidates: Sequence[CatalogItem],
    *,
    text: str = "",
    soft: CatalogQuery | None = None,
    k: int = 5,
    diversity: float = 0.3,
) -> list[Ranked]:
    """The best k of `candidates`: relevance to `text` plus soft-preference fit, diversified over genres (MMR).

    `diversity` 0 ranks purely by score; 1 cares only about genres not yet picked. Ties keep the candidates'
    order, so a retrieval order or catalog order carries through when nothing else separates items.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
    pool = list({item.id: item for item in reversed(candidates)}.values())[::-1]  # dedupe, first occurrence wins
    if k < 1 or not pool:
        return []
    soft = soft or CatalogQuery()
    relevance: dict[str, float] = {}
    if text.strip():
        hits = catalog.retrieve(text, k=len(pool), among=[item.id for item in pool])
        relevance = {item.id: max(0.0, float(score)) for item, score in hits}
    scored = [_score(item, relevance, soft, bool(text.strip())) for item in pool]
    genres = [frozenset(key(g) for g in item.genres) for item in pool]
    chosen: list[int] = []
    left = list(range(len(pool)))
    while left and len(chosen) < k:

        def mmr(i: int) -> float:
            overlap = max((_jaccard(genres[i], genres[j]) for j in chosen), default=0.0)
            return (1 - diversity) * scored[i].score - diversity * overlap

        best = max(left, key=lambda i: (mmr(i), -i))
        chosen.append(best)
        left.remove(best)
    return [scored[i] for i in chosen]


def _score(item: CatalogItem, relevance: dict[str, float], soft: CatalogQuery, has_text: bool) -> Ranked:
    checks = [c for c in soft.check(item)]
    fit = sum(c.ok for c in checks) / len(checks) if checks else 1.0
    rel = relevance.get(item.id, 0.0)
    if has_text and checks:
        score = 0.5 * rel + 0.5 * fit
    elif has_text:
        score = rel
    else:
        score = fit if checks else 0.0
    reasons = [f"{'meets' if c.ok else 'misses'}: {c.detail}" for c in checks if c.detail]
    if has_text:
        reasons.append(f"close to the request ({rel:.2f})")
    return Ranked(item, score, rel, fit, tuple(reasons))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def explain(item: CatalogItem, hard: CatalogQuery, soft: CatalogQuery, text: str = "") -> str:
    """One paragraph: the item, the wishes it meets, the soft ones it misses, any hard one it breaks (after a
    relaxation), and which words of the request its description shares."""
    parts = [item.summary()]
    hard_checks = [c for c in hard.check(item) if c.detail]
    soft_checks = [c for c in soft.check(item) if c.detail]
    met = [c.detail for c in hard_checks + soft_checks if c.ok]
    missed = [c.detail for c in soft_checks if not c.ok]
    broken = [c.detail for c in hard_checks if not c.ok]
    if met:
        parts.append("meets: " + "; ".join(met))
    if missed:
        parts.append("misses: " + "; ".join(missed))
    if broken:
        parts.append("breaks (relaxed): " + "; ".join(broken))
    shared = _shared_words(text, item)
    if shared:
        parts.append("matches the request on: " + ", ".join(shared))
    if len(parts) == 1:
        parts.append("no stated wishes to compare it with")
    return ". ".join(parts) + "."


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", key(text)) if len(w) > 2 and w not in _STOP]


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


def _shared_words(text: str, item: CatalogItem) -> list[str]:
    if not text.strip():
        return []
    have = {_stem(w) for w in _words(f"{item.title} {' '.join(item.genres)} {item.description}")}
    return list(dict.fromkeys(w for w in _words(text) if _stem(w) in have))[:6]
