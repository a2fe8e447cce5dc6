"""Cost of a run from its token counts and the `[prices]` table in config (USD per 1M tokens, [input, output]).

Keys are model specs (`openai:gpt-4o-mini`) or fnmatch globs (`openai:gpt-4o*`). A spec with no price
costs 0.0: local, packaged and student models run on the user's own hardware, and an unpriced API model
is better reported as 0 than guessed from a table that goes stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

_GLOB_CHARS = set("*?[")


def price_for(model_spec: str, prices: Mapping[str, Sequence[float]]) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens: the exact spec first, else the longest matching glob, else None.

    The longest pattern is the most specific one (`openai:gpt-4o-mini*` beats `openai:gpt-4o*`); ties go
    to the pattern first in sorted order, so the answer never depends on dict order.
    """
    if model_spec in prices:
        return _pair(prices[model_spec])
    matches = [p for p in prices if _GLOB_CHARS & set(p) and fnmatchcase(model_spec, p)]
    if not matches:
        return None
    best = min(matches, key=lambda p: (-len(p), p))
    return _pair(prices[best])


def cost_usd(
    model_spec: str, prompt_tokens: int, completion_tokens: int, prices: Mapping[str, Sequence[float]]
) -> float:
    """USD for one call or run; 0.0 when no price is known for the spec."""
    price = price_for(model_spec, prices)
    if price is None:
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


def _pair(price: Sequence[float]) -> tuple[float, float]:
    return float(price[0]), float(price[1])
