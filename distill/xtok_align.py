"""Cross-tokenizer alignment: which student labels a teacher with another tokenizer can score, and its
next-token distribution moved onto the student's vocabulary.

Each labelled token is anchored at (trained assistant message, character offset of the token's start inside that
message's content). Offsets into the whole rendered conversation would not do: teacher and student render it
with their own chat templates (another system prompt, other headers), so the same reply sits at different
offsets. Inside the reply the characters are the same on both sides, so equal anchors mean both tokens start at
the same character after the same text, and the two next-token distributions answer the same question.

Offsets come from the fast tokenizer's `return_offsets_mapping` on the *rendered conversation*, not from
tokenising the reply alone: BPE merges depend on what precedes a token, and these must be the exact tokens each
model is trained on or scored over (we check the ids match the encoded example, else nothing is aligned).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.encoding import IGNORE, EncodedExample

Anchor = tuple[int, int]  # (index of the trained assistant message, char offset of the token start in its content)
Span = tuple[int, int, int]  # (message index, where its content starts in the rendered text, where it ends)


def _render(tokenizer: Any, messages: Sequence[Any], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def content_spans(tokenizer: Any, example: ChatExample) -> tuple[str, list[Span]]:
    """The rendered conversation and, per trained turn, where the assistant's content lies in it.

    A template that trims the content is handled by finding the trimmed text; the span still starts where the
    untrimmed content would, so offsets stay comparable with a template that does not trim. A turn the
    template does not render after its own prefix is left out (its tokens get no anchor).
    """
    full = _render(tokenizer, example.messages, False)
    spans = []
    for i in example.train_turns:
        before = _render(tokenizer, example.messages[:i], True)
        content = str(example.messages[i]["content"])
        body = content.strip()
        at = full.find(body, len(before)) if full.startswith(before) else -1
        if at >= 0 and (body or at == len(before)):
            lead = len(content) - len(content.lstrip())
            spans.append((i, at - lead, at + len(body)))
    return full, spans


def anchors_from_offsets(
    offsets: Sequence[tuple[int, int]], labels: Sequence[int], spans: Sequence[Span]
) -> list[Anchor | None]:
    """One anchor per label target (labels[1:] that are not IGNORE, in order; what the trainer flattens).

    A token starting inside a span gets (message, start - content start); the end-of-turn token starts right at
    the content's end, so it is anchored too. A token that begins before the content (BPE merged it with the
    template's header) gets None.
    """
    out: list[Anchor | None] = []
    for j in range(1, len(labels)):
        if labels[j] == IGNORE:
            continue
        start = offsets[j][0]
        out.append(next(((turn, start - lo) for turn, lo, hi in spans if lo <= start <= hi), None))
    return out


def example_anchors(tokenizer: Any, example: ChatExample, encoded: EncodedExample) -> list[Anchor | None]:
    """Anchors of `encoded` (that tokenizer's encoding of `example`); all None when it is not a re-tokenisation
    of the rendered text (e.g. the teacher's own sampled ids), since then no character offsets are known."""
    full, spans = content_spans(tokenizer, example)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != list(encoded.input_ids):
        return [None] * sum(1 for x in encoded.labels[1:] if x != IGNORE)
    return anchors_from_offsets(enc["offset_mapping"], encoded.labels, spans)


def align_positions(student: Sequence[Hashable | None], teacher: Sequence[Hashable | None]) -> list[int | None]:
    """For each student position, the teacher position whose token starts at the same place (None: no token of
    the teacher starts there, i.e. the two tokenisations disagree on that boundary)."""
    where = {a: i for i, a in enumerate(teacher) if a is not None}
    return [None if a is None else where.get(a) for a in student]


def aligned_share(mapping: Sequence[int | None]) -> float:
    """The fraction of positions that have a teacher position (1.0 for none at all: nothing is left out)."""
    return sum(m is not None for m in mapping) / len(mapping) if mapping else 1.0


class VocabProjection:
    """Moves teacher next-token distributions onto the student's vocabulary.

    A teacher token maps to the student's first token of the same text: if the teacher's next token is " theorem"
    and the student writes it " the" + "orem", the student's next token is " the". Several teacher tokens can land
    on one student id; their probabilities add up. A token that is a piece of a multi-byte character, or a special
    token the student has no single token for, maps nowhere. Memoised per teacher id (a vocab has ~150k).
    """

    def __init__(self, teacher_tokenizer: Any, student_tokenizer: Any) -> None:
        self.teacher, self.student = teacher_tokenizer, student_tokenizer
        self._special = set(teacher_tokenizer.all_special_ids) | set(teacher_tokenizer.added_tokens_decoder)
        self._memo: dict[int, int | None] = {}

    def student_id(self, teacher_id: int) -> int | None:
        if teacher_id not in self._memo:
            text = self.teacher.decode([teacher_id], clean_up_tokenization_spaces=False)
            ids = self.student.encode(text, add_special_tokens=False) if text and "\ufffd" not in text else []
            single = len(ids) == 1 or teacher_id not in self._special  # "<|fim_prefix|>" is no "<"
            self._memo[teacher_id] = ids[0] if ids and single else None
        return self._memo[teacher_id]

    def project(
        self, ids: Sequence[int], logp: Sequence[float], rest: float
    ) -> tuple[list[int], list[float], float] | None:
        """(student ids, their log-probs, log of the tail) for one teacher top-k row; None when nothing maps.

        Same k as the input: unused slots repeat the first id with log-prob -inf (zero mass, and a repeated id
        changes neither the student's gather nor its rest bucket). The tail bucket holds the teacher's mass
        outside its top-k plus that of candidates that map nowhere, as kd.py's rest bucket does: the total is
        exactly 1, with no renormalisation that would inflate the mapped tokens.
        """
        merged: dict[int, float] = {}
        tail = math.exp(rest)
        for teacher_id, lp in zip(ids, logp, strict=True):
            target = self.student_id(int(teacher_id))
            if target is None:
                tail += math.exp(lp)
            else:
                merged[target] = merged.get(target, 0.0) + math.exp(lp)
        if not merged:
            return None
        out_ids, out_p = list(merged), list(merged.values())
        pad = len(ids) - len(out_ids)
        out_lp = [math.log(p) if p > 0 else -math.inf for p in out_p] + [-math.inf] * pad
        return out_ids + [out_ids[0]] * pad, out_lp, math.log(tail) if tail > 0 else -math.inf
