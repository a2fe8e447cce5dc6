"""Chat examples to token ids and loss labels, with the *student's* chat template.

Assistant spans are found by rendering prefixes, never by searching strings; only the trained assistant turns
(their end-of-turn token included) carry a label, every other token is IGNORE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentdistill.distill.chat_examples import ChatExample, Label
from agentdistill.errors import AgentDistillError
from agentdistill.models.base import Message
from agentdistill.models.token_ids import tokenizer_id

IGNORE = -100  # label of tokens that carry no loss (the value torch's cross_entropy ignores)
# End-of-turn tokens of common chat templates; the one the template emits is trained so the student stops.
END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")


class TemplateError(AgentDistillError):
    """The student's chat template does not render a conversation prefix-consistently."""


@dataclass(frozen=True)
class EncodedExample:
    """Token ids and labels (IGNORE except the trained assistant turns, end-of-turn token included)."""

    example_id: str
    input_ids: list[int]
    labels: list[int]
    label: Label = "positive"
    token_exact: bool = False  # the labels are the teacher's sampled ids, not a re-tokenisation of its text


def _render_ids(tokenizer: Any, messages: Sequence[Message], generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=generation_prompt, return_dict=False
    )
    return list(ids)


def _render_text(tokenizer: Any, messages: Sequence[Message], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def end_token_ids(tokenizer: Any) -> set[int]:
    """The ids that end a turn for this tokenizer: the END_TOKENS in its vocab, and its eos."""
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in END_TOKENS if t in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _through_end(ids: Sequence[int], start: int, stop: int, end_ids: set[int]) -> int:
    """End of the assistant span: just after its last end-of-turn token (what follows it is never generated)."""
    for i in range(stop - 1, start - 1, -1):
        if ids[i] in end_ids:
            return i + 1
    return stop


def _template_problem(tokenizer: Any, what: str) -> TemplateError:
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    return TemplateError(
        f"the chat template of {name} does not render conversations prefix-consistently: {what}. Assistant "
        "tokens are found by rendering each conversation prefix, so the template must render earlier turns "
        "the same whatever follows them (templates that rewrite earlier assistant turns are not supported); "
        "use a student whose template does, or fix its chat_template."
    )


def _spans_by_offsets(tokenizer: Any, messages: Sequence[Message], turns: Sequence[int]) -> tuple[list[int], list]:
    """Fallback when BPE merges a token across a turn boundary: map character spans to tokens by offsets."""
    full = _render_text(tokenizer, messages, False)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    spans = []
    for i in turns:
        before, through = _render_text(tokenizer, messages[:i], True), _render_text(tokenizer, messages[: i + 1], False)
        if not (through.startswith(before) and full.startswith(through)):
            raise _template_problem(tokenizer, f"the text up to message {i} changes once later messages are added")
        ends = [through.rfind(t) + len(t) for t in END_TOKENS if through.rfind(t) >= len(before)]
        stop = max(ends) if ends else len(through)
        inside = [k for k, (a, b) in enumerate(enc["offset_mapping"]) if a >= len(before) and b <= stop and b > a]
        spans.append((inside[0], inside[-1] + 1) if inside else (0, 0))
    return list(enc["input_ids"]), spans


def student_tokenizer_id(tokenizer: Any) -> str:
    """The id recorded runs compare against (models/token_ids.py): equal ids, equal tokenisation."""
    return tokenizer_id(lambda text: tokenizer.encode(text, add_special_tokens=False))


def _exact(tokenizer: Any, example: ChatExample, end_ids: set[int], student_id: str | None) -> EncodedExample | None:
    """The example with the teacher's sampled ids as its one trained turn, or None when they do not apply:
    another tokenizer, or ids that do not decode to the recorded completion (a token straddled a stop cut).

    The prompt is rendered with the student's template (what it will see when it runs); the trained span is the
    sampled ids, then the template's end-of-turn token unless the teacher ran out of tokens instead of ending.
    """
    tokens = example.tokens or {}
    if student_id is None or tokens.get("tokenizer") != student_id or len(example.train_turns) != 1:
        return None
    turn = example.train_turns[0]
    completion = [int(i) for i in tokens.get("completion") or []]
    if tokenizer.decode(completion, skip_special_tokens=True) != example.messages[turn]["content"]:
        return None
    prompt = _render_ids(tokenizer, example.messages[:turn], True)
    full = _render_ids(tokenizer, example.messages[: turn + 1], False)
    end = next((i for i in full[len(prompt) :] if i in end_ids), None)
    trained = completion + ([end] if end is not None and tokens.get("finish") != "length" else [])
    ids = prompt + trained
    return EncodedExample(example.id, ids, [IGNORE] * len(prompt) + trained, example.label, token_exact=True)


def encode_example(
    tokenizer: Any, example: ChatExample, end_ids: set[int] | None = None, student_id: str | None = None
) -> EncodedExample:
    """Render with the student's template; labels are the trained assistant turns, end-of-turn token included.

    An example carrying the teacher's sampled ids, for a student whose tokenizer id (`student_id`, computed when
    None) equals the teacher's, trains those ids instead of the student's tokenisation of the text.
    """
    end_ids = end_token_ids(tokenizer) if end_ids is None else end_ids
    if example.tokens is not None:
        student_id = student_tokenizer_id(tokenizer) if student_id is None else student_id
        exact = _exact(tokenizer, example, end_ids, student_id)
        if exact is not None:
            return exact
    ids = _render_ids(tokenizer, example.messages, False)
    spans = []
    for i in example.train_turns:
        before = _render_ids(tokenizer, example.messages[:i], True)
        through = _render_ids(tokenizer, example.messages[: i + 1], False)
        if through[: len(before)] != before or ids[: len(through)] != through:
            ids, spans = _spans_by_offsets(tokenizer, example.messages, example.train_turns)
            break
        spans.append((len(before), _through_end(through, len(before), len(through), end_ids)))
    labels = [IGNORE] * len(ids)
    for start, stop in spans:
        labels[start:stop] = ids[start:stop]
    return EncodedExample(example.id, ids, labels, example.label)


def collate(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, Any]:
    """Right-padded LongTensors (labels IGNORE on pads), the negative mask and the example ids."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        labels[row, :n] = torch.tensor(e.labels, dtype=torch.long)
        mask[row, :n] = 1
    negative = torch.tensor([e.label == "negative" for e in batch], dtype=torch.bool)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "is_negative": negative,
            "example_ids": [e.example_id for e in batch]}  # fmt: skip
