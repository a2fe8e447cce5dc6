"""Pieces of one transformers generate call: per-row stop strings, streaming deltas, seeding, reading rows back.

Split from transformers_backend.py so that file keeps to loading and dispatch; nothing here holds state
between calls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from agentdistill.models.base import FinishReason, StopStreamer, cut_at_stop


@dataclass(frozen=True)
class Row:
    """One returned sequence, read back: what becomes a Completion."""

    text: str  # cut before the first stop sequence
    finish_reason: FinishReason
    full: str  # everything decoded, stop sequence included (the streamer reconciles with it)
    completion_tokens: int  # generated tokens, the end token included, padding excluded
    ids: tuple[int, ...] = ()  # the generated ids, end token and padding excluded (the text's own tokens)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for one call and restore it after, so a seeded call does not reseed the caller's code.

    generate() samples from the global RNG (it takes no Generator); the model lock keeps calls apart.
    """
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def finish_row(
    tokenizer: PreTrainedTokenizerBase,
    generated: list[int],
    *,
    eos: set[int],
    pad: int,
    stop: Sequence[str],
    max_tokens: int,
    stopped_at: int | None,
) -> Row:
    """Read one row of generate's output (the tokens after the prompt) back into text and counts.

    A row that hit a stop string or its own token limit while other rows went on is padded after
    `stopped_at`; the padding is not counted (the pad id is often the end token, so it cannot be told
    apart afterwards).
    """
    tokens = generated[:stopped_at]
    count, ended = len(tokens), False
    for i, token in enumerate(tokens):
        if token in eos:  # the end token counts, as it does in API usage
            count, ended = i + 1, True
            break
        if token == pad:  # rows finished early are padded
            count = i
            break
    ids = tuple(tokens[: count - 1] if ended else tokens[:count])
    full = tokenizer.decode(tokens[:count], skip_special_tokens=True)
    text, hit = cut_at_stop(full, stop)
    reason: FinishReason = "stop" if hit or ended or count < max_tokens else "length"
    return Row(text, reason, full, count, ids)


class RowStops(StoppingCriteria):
    """Marks each row done once its text holds one of its stop sequences, or it has its own token limit.

    Stop strings may span tokens, so text is checked, but only a tail of each row is decoded per step:
    a stop sequence that appeared earlier would have ended the row then.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stops: Sequence[Sequence[str]],
        limits: Sequence[int],
        prompt_len: int,
    ) -> None:
        self.tokenizer, self.stops, self.limits, self.prompt_len = tokenizer, stops, limits, prompt_len
        longest = max((len(s) for row in stops for s in row), default=0)
        # Tokens decoded per check: byte-fallback tokens can carry a third of a character. A stop missed here
        # only costs extra tokens: finish_row still cuts the text at it.
        self.tail = 4 * longest + 8
        self.stopped_at: dict[int, int] = {}  # row -> tokens generated when it stopped (padding follows)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_len
        for index, row in enumerate(input_ids):
            if index in self.stopped_at:
                continue
            if generated >= self.limits[index]:
                self.stopped_at[index] = generated
            elif self.stops[index]:
                start = max(self.prompt_len, input_ids.shape[1] - self.tail)
                text = self.tokenizer.decode(row[start:].tolist(), skip_special_tokens=True)
                if any(s in text for s in self.stops[index]):
                    self.stopped_at[index] = generated
        done = [i in self.stopped_at for i in range(input_ids.shape[0])]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    @property
    def needed(self) -> bool:
        """False when no row has stop strings or a limit below the batch's: generate's own limit suffices."""
        return any(self.stops) or len(set(self.limits)) > 1


class DeltaStreamer(BaseStreamer):
    """Turns generated token ids into text deltas for a StopStreamer, which holds back anything past a stop."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_streamer: StopStreamer, started: float) -> None:
        self.tokenizer, self.out, self.started = tokenizer, stop_streamer, started
        self.ids: list[int] = []
        self.text = ""
        self.ttft_s: float | None = None
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() pushes the prompt first
            self._prompt_seen = True
            return
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        # Half a multi-byte character decodes to U+FFFD; wait for the rest rather than emit it.
        if text.endswith("\ufffd") or not text.startswith(self.text):
            return
        delta, self.text = text[len(self.text) :], text
        if delta:
            self.out.feed(delta)

    def end(self) -> None:
        """Nothing to flush here: finish() reconciles with the final decode."""

    def finish(self, full_text: str) -> str:
        """Emit whatever the final decode has beyond what was streamed (held-back bytes), then flush."""
        if full_text.startswith(self.text) and len(full_text) > len(self.text):
            self.out.feed(full_text[len(self.text) :])
            self.text = full_text
        return self.out.finish()
