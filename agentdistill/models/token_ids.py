"""Token-exact records: which ids a local model sampled, and an id for the tokenizer that reads them.

A student that shares its teacher's tokenizer can learn the teacher's sampled ids themselves rather than a
re-tokenisation of the text (which may split the same text differently). Two tokenizers are taken to be the
same when a fixed probe text (chat specials, code, numbers, unicode, odd spacing) encodes to the same ids:
vocabulary sizes are no guide (a GGUF pads its embedding table; the HF tokenizer does not).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

PROBE = (
    "<|im_start|>user\nHow many r's in 'strawberry'? 3 + 4 = 7 ✓ déjà-vu\t  x<|im_end|>\n"
    "<|im_start|>assistant\nThought: 12.5% of 1,234 = 154.25\n```python\nprint(sum([1, 2]))  # 中文 😀\n```"
    "<|im_end|>\n<|endoftext|>  \n\n\r\n    def f(x):\n\treturn x**2\n"
)


def tokenizer_id(encode: Callable[[str], Sequence[int]]) -> str:
    """A short hash of the probe's ids under `encode` (which must parse special tokens in text)."""
    ids = [int(i) for i in encode(PROBE)]
    return "tok-" + hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def ids_for_text(ids: Sequence[int], text: str, decode: Callable[[Sequence[int]], str]) -> tuple[int, ...]:
    """The longest prefix of `ids` whose decoded text begins `text`, less trailing tokens that decode to nothing.

    A completion cut at a stop sequence keeps the tokens before the cut; a token that straddles the cut is
    dropped, so the ids may then decode to slightly less than `text` (`exact_ids` tells which).
    The cut is almost always in the last few tokens, so this decodes a handful of prefixes.
    """
    for k in range(len(ids), -1, -1):
        decoded = decode(ids[:k])
        if text.startswith(decoded):
            while k > 0 and decode(ids[: k - 1]) == decoded:  # trailing end tokens decode to nothing: not text
                k -= 1
            return tuple(int(i) for i in ids[:k])
    return ()


def exact_ids(ids: Sequence[int] | None, text: str, decode: Callable[[Sequence[int]], str]) -> bool:
    """True when `ids` decode to exactly `text`: then they can stand for it in training."""
    return ids is not None and decode(list(ids)) == text


def ids_from_logprobs(logprobs: Any, text: str) -> tuple[tuple[int, ...], float] | None:
    """(sampled ids of `text`, their summed log-probability) from an OpenAI-style choice's `logprobs`, when its
    entries carry token ids (llama-server's do, OpenAI's do not); None otherwise."""
    entries = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), int) for e in entries):
        return None
    pieces = {e["id"]: bytes(e.get("bytes") or str(e.get("token", "")).encode()) for e in entries}

    def decode(part: Sequence[int]) -> str:
        return b"".join(pieces[i] for i in part).decode("utf-8", errors="replace")

    ids = ids_for_text([e["id"] for e in entries], text, decode)
    return ids, sum(float(e.get("logprob", 0.0)) for e in entries[: len(ids)])
