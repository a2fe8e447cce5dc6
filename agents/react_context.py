"""What react shows the model of its tools' results: clipped observations, a conversation kept inside the context,
and the identity of an action (to point out a repeated one)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from agentdistill.models.base import Message

OBSERVATION_LIMIT = 3000  # characters of a tool result shown to the model; small contexts fill fast
# A turn's conversation is kept under this many characters (~3k tokens: a 4096-token context less the reply):
# six 3000-character observations overflowed llama-server's context on 2 of 20 HotpotQA runs, which then failed.
CONTEXT_CHARS = 11000
SHORTENED_CHARS = 400  # what an older observation keeps when the conversation must shrink
SHORTENED_NOTE = " ...(shortened to fit the context)"


def action_key(tool: str, args: Mapping[str, Any]) -> str:
    """What makes two tool calls the same action: the tool and its arguments, with text compared by its words
    (case and punctuation aside), so re-quoting the same query still counts as a repeat."""
    words = {k: " ".join(re.findall(r"\w+", v.lower())) if isinstance(v, str) else v for k, v in args.items()}
    return json.dumps([tool, words], sort_keys=True, default=str)


def fit_context(messages: list[Message], budget: int) -> list[Message]:
    """`messages` with the oldest observations shortened, oldest first, until they fit `budget` characters.

    The system prompt, the question, the model's own turns and the latest observation stay whole, so the model
    keeps its plan and what it just read; a conversation that cannot fit is returned as short as it gets."""
    size = sum(len(m["content"]) for m in messages)
    if size <= budget:
        return messages
    fitted = list(messages)
    observations = [i for i, m in enumerate(fitted) if i >= 2 and m["role"] == "user"][:-1]
    for i in observations:
        text = fitted[i]["content"]
        if len(text) > SHORTENED_CHARS + len(SHORTENED_NOTE) and not text.endswith(SHORTENED_NOTE):
            short = text[:SHORTENED_CHARS] + SHORTENED_NOTE
            fitted[i] = {**fitted[i], "content": short}
            size -= len(text) - len(short)
        if size <= budget:
            break
    return fitted


def clip(text: str, limit: int = OBSERVATION_LIMIT) -> str:
    """`text`, cut to `limit` characters with a mark that it was."""
    return text if len(text) <= limit else text[:limit] + " ...(truncated)"
