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
