"""KV-cache reuse between calls whose prompts share a prefix.

A ReAct or CodeAct run re-sends its whole conversation every step, and each step only appends (the
model's turn, then an observation). Keeping the attention keys/values of the last prompt, and of the
completion the model wrote after it, means the next call only has to run the new suffix through the
model instead of the whole conversation again.

The cache is owned by one loaded model and only touched while that model's lock is held.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer


@dataclass
class PrefixStats:
    """Running totals, for benchmarks and `models info`: how much prompt work the cache saved."""

    calls: int = 0  # lookups made (one per generate that could reuse)
    hits: int = 0  # lookups that reused at least one token
    prompt_tokens: int = 0  # prompt tokens of those calls
    reused_tokens: int = 0  # prompt tokens whose keys/values came from the cache instead of the model

    @property
    def fed_tokens(self) -> int:
        """Prompt tokens the model actually had to process."""
        return self.prompt_tokens - self.reused_tokens


@dataclass
class _Entry:
    ids: torch.Tensor  # 1-D, on the CPU: the tokens whose keys/values `cache` holds, in order
    cache: DynamicCache  # batch size 1


def common_prefix_len(a: torch.Tensor, b: torch.Tensor) -> int:
    """Number of leading tokens two 1-D id tensors share."""
    n = min(a.shape[0], b.shape[0])
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0, 0]) if differ.numel() else n


def crop_to(cache: DynamicCache, length: int) -> None:
    """Keep the first `length` positions of `cache` (transformers 5 crops by a negative count)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


def can_crop(cache: DynamicCache) -> bool:
    """True when cropping gives back exactly the keys/values of a shorter prompt.

    Plain attention layers keep every position. A sliding-window layer drops old positions once it is
    full, and a linear-attention layer keeps a running state, so those cannot be rolled back.
    """
    for layer in cache.layers:
        if type(layer) is DynamicSlidingWindowLayer:  # keeps the last window - 1 positions, so fine until then
            if layer.get_seq_length() > layer.sliding_window - 1:
                return False
        elif type(layer) is not DynamicLayer:  # linear attention, quantized, indexed...: not worth the risk
            return False
    return bool(cache.layers)


class PrefixCache:
    """A small LRU of (token ids, keys/values) for one model, bounded by total tokens held.

    `take` removes the entry it hands out, because generate() extends that cache in place; `put`
    stores the extended one afterwards. A ReAct run keeps hitting the entry it stored last; a few
    entries let several runs that alternate on one model (threads, SAG candidates) keep theirs.
    """

    def __init__(self, *, max_entries: int = 4, max_tokens: int = 8192, keep_completion: bool = True) -> None:
        if max_entries < 1 or max_tokens < 1:
            raise ValueError(f"max_entries and max_tokens must be >= 1, got {max_entries} and {max_tokens}")
        self.max_entries = max_entries  # entries kept; the least recently used goes first
        self.max_tokens = max_tokens  # positions kept over all entries (memory = this x per-token KV size)
        self.keep_completion = keep_completion  # also keep the completion's keys/values (a run's next prompt has it)
        self.stats = PrefixStats()
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, ids: torch.Tensor) -> tuple[DynamicCache | None, int]:
        """(cache cropped to the longest shared prefix, its length) for prompt `ids` (1-D, CPU), or (None, 0).

        At most len(ids) - 1 positions are reused: generate() needs one new token to produce logits from.
        """
        self.stats.calls += 1
        self.stats.prompt_tokens += int(ids.shape[0])
        best, best_len = None, 0
        for key, entry in self._entries.items():
            shared = common_prefix_len(entry.ids, ids)
            if shared > best_len:
                best, best_len = key, shared
        reuse = min(best_len, int(ids.shape[0]) - 1)
        if best is None or reuse < 1:
            return None, 0
        entry = self._entries.pop(best)
        crop_to(entry.cache, reuse)
        self.stats.hits += 1
        self.stats.reused_tokens += reuse
        return entry.cache, reuse

    def put(self, ids: torch.Tensor, cache: DynamicCache) -> None:
        """Remember `cache`, which holds the keys/values of exactly `ids` (1-D, CPU), batch size 1."""
        length = cache.get_seq_length()
        if length != ids.shape[0] or length > self.max_tokens or not can_crop(cache):
            return  # a cache we could not crop back correctly is never offered again
        self._entries[self._next_key] = _Entry(ids, cache)
        self._next_key += 1
        while len(self._entries) > self.max_entries or self._held() > self.max_tokens:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry (weights changed, or the model is being unloaded)."""
        self._entries.clear()

    def _held(self) -> int:
        return sum(int(e.ids.shape[0]) for e in self._entries.values())
