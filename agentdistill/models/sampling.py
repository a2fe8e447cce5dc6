"""A model whose greedy calls are sampled: several attempts at one question differ, so a pass rate means something."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback


class SampledModel:
    """Calls made greedily (temperature 0) are sampled at `temperature` instead; calls that sample already keep
    their own settings. Each call's seed derives from `seed` and the prompt, so an attempt is reproducible (and
    a resumed attempt samples what the killed one would have) whatever order concurrent calls arrive in.
    """

    def __init__(self, inner: ChatModel, *, temperature: float, seed: int) -> None:
        if temperature <= 0:
            raise ValueError(f"a sampled attempt needs temperature > 0, got {temperature}")
        self.inner, self.temperature, self.seed = inner, temperature, seed
        self.spec = inner.spec

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        if temperature == 0:
            blob = json.dumps([self.seed, list(messages)], sort_keys=True, ensure_ascii=False).encode()
            temperature, seed = self.temperature, int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") >> 1
        return self.inner.generate(
            messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed, on_token=on_token
        )
