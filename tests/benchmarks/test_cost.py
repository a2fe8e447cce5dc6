from __future__ import annotations

import pytest

from agentdistill.benchmarks.cost import cost_usd, price_for

PRICES = {
    "openai:gpt-4o*": [2.5, 10.0],
    "openai:gpt-4o-mini*": [0.15, 0.6],
    "openai:gpt-4o-mini": [0.1, 0.5],
    "openai:*": [1.0, 1.0],
    "local:qwen-big": [0.05, 0.05],
}


def test_exact_spec_wins_then_the_longest_glob() -> None:
    assert price_for("openai:gpt-4o-mini", PRICES) == (0.1, 0.5)
    assert price_for("openai:gpt-4o-mini-2024-07-18", PRICES) == (0.15, 0.6)
    assert price_for("openai:gpt-4o-2024-08-06", PRICES) == (2.5, 10.0)
    assert price_for("openai:o3", PRICES) == (1.0, 1.0)
    assert price_for("anthropic:claude", PRICES) is None


def test_cost_from_tokens_and_zero_for_unpriced_local_models() -> None:
    assert cost_usd("openai:gpt-4o-mini", 1_000_000, 2_000_000, PRICES) == pytest.approx(0.1 + 1.0)
    assert cost_usd("openai:gpt-4o-2024", 1000, 500, PRICES) == pytest.approx((1000 * 2.5 + 500 * 10.0) / 1e6)
    for spec in ("local:qwen2.5-0.5b", "hf:./students/run3", "student:run3", "scripted:replies.txt"):
        assert cost_usd(spec, 10_000, 10_000, PRICES) == 0.0
    assert cost_usd("local:qwen-big", 1_000_000, 0, PRICES) == pytest.approx(0.05)
    assert cost_usd("openai:gpt-4o", 100, 100, {}) == 0.0


def test_a_literal_key_is_not_treated_as_a_glob() -> None:
    assert price_for("openai:gpt-4o-mini-x", {"openai:gpt-4o-mini": [1, 1]}) is None
    assert price_for("a:b", {"a:b": (1, 2)}) == (1.0, 2.0)
