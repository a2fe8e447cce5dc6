"""Prefix KV-cache reuse: the LRU itself (fast, tiny tensors) and token-identical output on SmolLM2 (integration)."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from agentdistill.models import ModelOptions, assistant, system, user
from agentdistill.models.prefix_cache import PrefixCache, can_crop, common_prefix_len
from agentdistill.models.transformers_backend import TransformersChatModel, clear_model_cache, load_packaged_model


def kv(length: int, layers: int = 2) -> DynamicCache:
    """A batch-1 cache whose position i holds the value i, so a crop is visible in the numbers."""
    cache = DynamicCache()
    values = torch.arange(length, dtype=torch.float32).reshape(1, 1, length, 1)
    for layer in range(layers):
        cache.update(values.clone(), values.clone(), layer)
    return cache


def ids(*tokens: int) -> torch.Tensor:
    return torch.tensor(tokens, dtype=torch.long)


def test_common_prefix_len() -> None:
    assert common_prefix_len(ids(1, 2, 3), ids(1, 2, 4, 5)) == 2
    assert common_prefix_len(ids(1, 2), ids(1, 2, 3)) == 2
    assert common_prefix_len(ids(9), ids(1, 2)) == 0
    assert common_prefix_len(ids(), ids(1)) == 0


def test_take_crops_to_the_shared_prefix_and_keeps_one_token_to_feed() -> None:
    cache = PrefixCache()
    cache.put(ids(1, 2, 3, 4), kv(4))
    hit, reused = cache.take(ids(1, 2, 3, 9, 9))
    assert reused == 3 and hit is not None and hit.get_seq_length() == 3
    assert hit.layers[0].keys.flatten().tolist() == [0.0, 1.0, 2.0]  # the first positions, not the last
    assert len(cache) == 0  # handed out: generate() extends it in place, the caller puts it back

    cache.put(ids(1, 2, 3), kv(3))
    hit, reused = cache.take(ids(1, 2, 3))  # the same prompt again: the last token must still be fed
    assert reused == 2 and hit is not None and hit.get_seq_length() == 2
    assert cache.stats.calls == 2 and cache.stats.hits == 2 and cache.stats.reused_tokens == 5
    assert cache.stats.fed_tokens == 8 - 5


def test_a_different_prefix_misses_and_keeps_the_entry() -> None:
    cache = PrefixCache()
    cache.put(ids(1, 2, 3), kv(3))
    assert cache.take(ids(7, 2, 3)) == (None, 0)
    assert len(cache) == 1 and cache.stats.hits == 0


def test_take_picks_the_entry_with_the_longest_shared_prefix() -> None:
    cache = PrefixCache()
    cache.put(ids(1, 2, 5, 6), kv(4))
    cache.put(ids(1, 2, 3, 4), kv(4))
    cache.put(ids(1, 9), kv(2))
    _, reused = cache.take(ids(1, 2, 3, 4, 8))
    assert reused == 4 and len(cache) == 2


def test_put_rejects_a_cache_that_does_not_match_its_ids() -> None:
    cache = PrefixCache()
    cache.put(ids(1, 2, 3), kv(2))
    assert len(cache) == 0


def test_lru_is_bounded_by_entries_and_by_tokens() -> None:
    cache = PrefixCache(max_entries=2, max_tokens=10)
    cache.put(ids(1, 1), kv(2))
    cache.put(ids(2, 2), kv(2))
    cache.put(ids(3, 3), kv(2))
    assert len(cache) == 2 and cache.take(ids(1, 1, 0)) == (None, 0)  # the oldest went
    cache.put(ids(4, 4, 4, 4, 4, 4, 4), kv(7))  # 2 + 2 + 7 > 10 tokens: evict from the oldest
    assert len(cache) == 2 and cache.take(ids(2, 2, 0)) == (None, 0)
    cache.put(ids(*range(11)), kv(11))  # bigger than the whole budget: not kept at all
    assert cache.take(ids(*range(12)))[1] == 0
    cache.clear()
    assert len(cache) == 0


def test_sliding_window_caches_are_only_reused_inside_the_window() -> None:
    from transformers.cache_utils import DynamicSlidingWindowLayer

    cache = DynamicCache()
    cache.layers.append(DynamicSlidingWindowLayer(sliding_window=4))
    values = torch.zeros(1, 1, 3, 1)
    cache.update(values, values, 0)
    assert can_crop(cache)  # 3 positions, window keeps 3: nothing dropped yet
    cache.update(values[:, :, :1], values[:, :, :1], 0)
    assert not can_crop(cache)  # the first position has slid out and cannot be restored


# ---- real SmolLM2-135M ----

SYSTEM = "You are a concise assistant."
TURNS = ["Name three fruits.", "Now name two vegetables.", "Which of those is the sweetest?"]


def smol(**variant: bool) -> TransformersChatModel:
    model = load_packaged_model("smollm2-135m", ModelOptions())  # the transformers path, even with llama.cpp
    return model.variant(**variant) if variant else model


def converse(model: TransformersChatModel, system_text: str) -> list[str]:
    """Three growing turns, the way an agent run appends: each answer goes back into the next prompt."""
    messages, answers = [system(system_text)], []
    for turn in TURNS:
        messages.append(user(turn))
        [reply] = model.generate(messages, max_tokens=10)
        answers.append(reply.text)
        messages.append(assistant(reply.text))
    return answers


@pytest.mark.integration
def test_greedy_output_is_token_identical_with_and_without_prefix_reuse() -> None:
    reuse, plain = smol(reuse_prefix=True), smol(reuse_prefix=False)
    with_reuse = converse(reuse, SYSTEM)
    assert with_reuse == converse(plain, SYSTEM)
    stats = reuse.prefix_stats
    assert stats is not None and plain.prefix_stats is None
    assert stats.hits == 2 and stats.calls == 3  # turns 2 and 3 started from the previous turn's cache
    # Turn 2 reused turn 1's prompt and its answer (the completion is kept), so most of the prompt was skipped.
    assert stats.reused_tokens > stats.fed_tokens


@pytest.mark.integration
def test_a_changed_prefix_is_not_reused() -> None:
    model = smol(reuse_prefix=True)
    model.generate([system(SYSTEM), user(TURNS[0])], max_tokens=8)
    before = model.prefix_stats.reused_tokens  # type: ignore[union-attr]
    other = "You are a pirate. Answer every question like a pirate would."
    first = model.generate([system(other), user(TURNS[0])], max_tokens=8)[0].text
    # Only the template's opening tokens ("<|im_start|>system\nYou are a") could match, never the old turns.
    assert model.prefix_stats.reused_tokens - before < 8  # type: ignore[union-attr]
    assert first == smol(reuse_prefix=False).generate([system(other), user(TURNS[0])], max_tokens=8)[0].text


@pytest.mark.integration
def test_streaming_and_stops_are_unchanged_by_reuse() -> None:
    model = smol(reuse_prefix=True)
    count = [user("Count from 1 to 10, separated by commas.")]
    model.generate(count, max_tokens=4)  # leaves this prompt in the cache
    deltas: list[str] = []
    [done] = model.generate(count, stop=[", 5"], max_tokens=16, on_token=deltas.append)
    assert "".join(deltas) == done.text == "1, 2, 3, 4"
    assert model.prefix_stats.hits >= 1  # type: ignore[union-attr]


@pytest.mark.integration
def test_clear_model_cache_and_unwrap_drop_cached_prefixes() -> None:
    model = smol()  # the process-wide cached model itself, which clear_model_cache reaches
    hi = [user("Hi")]
    model.generate(hi, max_tokens=2)
    hits = model.prefix_stats.hits  # type: ignore[union-attr]
    model.generate(hi, max_tokens=2)
    assert model.prefix_stats.hits == hits + 1  # type: ignore[union-attr]
    model.unwrap()  # whoever holds the raw weights may train them: cached keys/values would be stale
    model.generate(hi, max_tokens=2)
    assert model.prefix_stats.hits == hits + 1  # type: ignore[union-attr]
    clear_model_cache()
    model.generate(hi, max_tokens=2)
    assert model.prefix_stats.hits == hits + 1  # type: ignore[union-attr]
