"""Chat examples from recorded runs: the conversations a student learns, deduped and split by question.

An example is exactly what the model saw plus what it wrote; the growing prompts of one multi-step run merge
into one conversation, so every assistant turn is trained once.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agentdistill.errors import ConfigError
from agentdistill.models.base import Message
from agentdistill.trajectory import Run, Step

Label = Literal["positive", "negative"]
# Step errors meaning a model's reply could not be read as the format the agent asked for (a ReAct action, a
# recbot plan): a format the student must not learn.
# protocol_error: a reply the graph overrode (the materials supervisor answering before any lookup).
FORMAT_ERRORS = frozenset({"parse_error", "plan_error", "protocol_error"})
# A selection of fewer distinct questions trains on all of them: a real CPU run kept 2 correct runs, and holding
# one out for a val loss halved the training data while the loss of a single question says little.
MIN_VAL_QUESTIONS = 10


@dataclass(frozen=True, kw_only=True)
class ChatExample:
    """One conversation to train on: `messages` includes the assistant turns; `train_turns` carry the loss."""

    id: str  # content hash of messages, train_turns and label: equal content, equal id
    run_id: str
    question: str
    messages: list[Message]
    train_turns: tuple[int, ...]
    label: Label = "positive"
    agent: str = ""
    model: str | None = None
    role: str = "policy"
    meta: dict[str, Any] = field(default_factory=dict)  # suite, item_id, score, status, step indices
    # One recorded call's sampled ids (token_exact_record): then the example is that call alone, and a student
    # with the same tokenizer learns these ids rather than a re-tokenisation of the completion text.
    tokens: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "train_turns": list(self.train_turns)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ChatExample:
        data = dict(raw)
        data["train_turns"] = tuple(data.get("train_turns", ()))
        example = cls(**data)
        bad = [i for i in example.train_turns if not 0 <= i < len(example.messages)]
        if bad or any(example.messages[i]["role"] != "assistant" for i in example.train_turns):
            raise ValueError(f"train_turns {list(example.train_turns)} must index assistant messages")
        return example


def trainable(step: Step, roles: Sequence[str]) -> bool:
    """A model call of one of `roles` that produced a completion: the calls examples are made of."""
    return step.kind == "model" and step.role in roles and step.completion is not None


def _chosen_text(step: Step) -> str:
    """The completion the run went on with: with SAG samples, the voted one (`parsed["sample"]`)."""
    index = (step.parsed or {}).get("sample")
    if step.samples and isinstance(index, int) and 0 <= index < len(step.samples):
        return step.samples[index]
    return step.completion or ""


def _same(a: Message, b: Message) -> bool:
    # Graphs may strip whitespace off a completion before putting it back into the conversation.
    if a["role"] != b["role"]:
        return False
    if a["role"] == "assistant":
        return a["content"].strip() == b["content"].strip()
    return a["content"] == b["content"]


def _is_prefix(short: Sequence[Message], long: Sequence[Message]) -> bool:
    return len(short) < len(long) and all(_same(a, b) for a, b in zip(short, long, strict=False))


def token_exact_record(step: Step) -> dict[str, Any] | None:
    """The chosen completion's sampled ids from a step's token record, or None when the backend recorded none."""
    record = step.tokens or {}
    completions = record.get("completions") or []
    index = (step.parsed or {}).get("sample", 0) if step.samples else 0
    if not isinstance(index, int) or not 0 <= index < len(completions) or not record.get("tokenizer"):
        return None
    finish = (record.get("finish") or ["stop"] * len(completions))[index]
    return {"tokenizer": record["tokenizer"], "completion": list(completions[index]), "finish": finish}


def examples_from_runs(
    runs: Sequence[Run],
    *,
    label: Label = "positive",
    roles: Sequence[str] = ("policy",),
    token_exact: bool = True,
    tokenizer: str | None = None,
) -> list[ChatExample]:
    """One example per model call (what it saw + what it wrote); calls whose conversation continues in a later
    call of the same run merge into it, so a ReAct run becomes one conversation with a loss on every turn.

    With `token_exact`, a call whose backend recorded its sampled ids is an example of its own that carries them
    (merging would put re-tokenised earlier turns where the ids belong); given the student's `tokenizer` id, only
    calls recorded with that tokenizer (others merge as text: their ids would be of no use).

    Positive examples carry no loss on turns that failed to parse (kept only as context when the parse-error
    filter is off); negative examples are trained on every turn, since REDI pushes the whole run down.
    """
    out: list[ChatExample] = []
    for run in runs:
        open_: list[tuple[list[Message], list[int], list[int], Step]] = []  # messages, turns, step indices, last
        for step in (s for s in run.steps if trainable(s, roles)):
            messages = [dict(m) for m in step.messages_in] + [{"role": "assistant", "content": _chosen_text(step)}]
            parse_failed = step.error is not None and step.error.kind in FORMAT_ERRORS
            turn = [] if (parse_failed and label == "positive") else [len(messages) - 1]
            exact = token_exact_record(step) if token_exact and turn else None
            if exact is not None and tokenizer is not None and exact["tokenizer"] != tokenizer:
                exact = None
            if exact is not None:
                out.append(_example(run, messages, tuple(turn), label, step, [step.index], exact))
                continue
            parent = next(
                (c for c in reversed(open_) if c[3].role == step.role and _is_prefix(c[0], step.messages_in)), None
            )
            if parent is not None:
                open_.remove(parent)
                open_.append((messages, parent[1] + turn, parent[2] + [step.index], step))  # type: ignore[arg-type]
            else:
                open_.append((messages, turn, [step.index], step))  # type: ignore[arg-type]
        for messages, turns, indices, last in open_:
            if turns:
                out.append(_example(run, messages, tuple(turns), label, last, indices))
    return out


def _example(
    run: Run, messages: list[Message], turns: tuple[int, ...], label: Label, step: Step, indices: list[int],
    tokens: dict[str, Any] | None = None,
) -> ChatExample:  # fmt: skip
    meta = {"suite": run.suite, "item_id": run.item_id, "score": run.score, "status": run.status, "steps": indices}
    return ChatExample(
        id=content_hash(messages, turns, label), run_id=run.id, question=run.question, messages=messages,
        train_turns=turns, label=label, agent=run.agent, model=step.model, role=step.role, meta=meta, tokens=tokens,
    )  # fmt: skip


def content_hash(messages: Sequence[Message], train_turns: Sequence[int], label: str) -> str:
    blob = json.dumps([list(messages), list(train_turns), label], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def dedupe(examples: Sequence[ChatExample]) -> tuple[list[ChatExample], int]:
    """First of each content hash (teachers often answer a repeated question identically); returns (kept, removed)."""
    first: dict[str, ChatExample] = {}
    for example in examples:
        first.setdefault(example.id, example)
    return list(first.values()), len(examples) - len(first)


def normalize_question(text: str) -> str:
    """Case, width, whitespace and trailing punctuation folded, so near-identical questions split together."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip().rstrip("?.!").strip()


def split_by_question(
    examples: Sequence[ChatExample], val_fraction: float, seed: int
) -> tuple[list[ChatExample], list[ChatExample]]:
    """Split by normalised question, so no question is in both sets (val loss measures generalisation)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError("val_fraction", val_fraction, "a fraction in [0, 1), e.g. 0.1")
    questions = sorted({normalize_question(e.question) for e in examples})
    random.Random(seed).shuffle(questions)
    n_val = 0
    if val_fraction > 0 and len(questions) >= MIN_VAL_QUESTIONS:  # at least one each way when asked for a val set
        n_val = min(max(round(len(questions) * val_fraction), 1), len(questions) - 1)
    val_questions = set(questions[:n_val])
    train = [e for e in examples if normalize_question(e.question) not in val_questions]
    val = [e for e in examples if normalize_question(e.question) in val_questions]
    return train, val
