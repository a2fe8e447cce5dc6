"""Pieces every agent graph shares: prompt templates, question validation, run status bookkeeping."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from agentdistill.errors import AgentDistillError

Status = Literal["running", "ok", "max_steps", "error"]

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)


class EmptyQuestion(AgentDistillError):
    def __init__(self) -> None:
        super().__init__('the question is empty: pass a non-empty question, e.g. `agentdistill ask "..."`.')


class PromptNotFound(AgentDistillError):
    pass


def check_question(question: object) -> str:
    """The stripped question, or EmptyQuestion: a graph never starts a run for nothing."""
    if not isinstance(question, str) or not question.strip():
        raise EmptyQuestion()
    return question.strip()


def load_prompt(name: str, override_dir: str | Path | None = None) -> str:
    """Template `name` (e.g. "react_system"): `<override_dir>/<name>.txt` when present, else the packaged one.

    Prompts are plain text next to their graph so users can read them and override them from config.
    """
    if override_dir is not None:
        custom = Path(override_dir) / f"{name}.txt"
        if custom.is_file():
            return custom.read_text(encoding="utf-8")
    packaged = resources.files("agentdistill.agents") / "prompts" / f"{name}.txt"
    if not packaged.is_file():
        known = sorted(
            p.name.removesuffix(".txt") for p in (resources.files("agentdistill.agents") / "prompts").iterdir()
        )
        raise PromptNotFound(f"no prompt template {name!r}; packaged templates: {', '.join(known)}")
    return packaged.read_text(encoding="utf-8")


def earlier_turns(history: Sequence[Sequence[str | None]]) -> str:
    """A thread's earlier questions and answers as the block a turn's prompt opens with ("" on a new thread)."""
    earlier = "".join(f"Q: {q}\nA: {a or '(no answer)'}\n" for q, a in history)
    return f"Earlier in this conversation:\n{earlier}\n" if earlier else ""


def max_steps_message(max_steps: int) -> str:
    return f"stopped after {max_steps} steps without a final answer (raise max_steps or check the model's format)"


def json_values(text: str) -> Iterator[Any | json.JSONDecodeError]:
    """Every JSON object or list that starts in a model's `text`, inside code fences first, then anywhere.

    Small models wrap JSON in prose and fences and stop mid-object, so each `{` or `[` is tried in turn; where
    one does not begin valid JSON the decode error is yielded instead, for callers that report truncation.
    """
    decoder = json.JSONDecoder()
    for chunk in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        for start, char in enumerate(chunk):
            if char not in "{[":
                continue
            try:
                yield decoder.raw_decode(chunk, start)[0]
            except json.JSONDecodeError as exc:
                yield exc
            except RecursionError:  # "[[[[..." deeper than the parser's recursion: a reply error, not ours
                yield json.JSONDecodeError("JSON nested too deeply", chunk, start)


_FINAL = re.compile(r"final answer\s*[:：]\s*", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def final_answer_text(text: str) -> str:
    """The answer a one-call baseline gave: what follows its last "Final Answer:" (that line only), else a
    \\boxed{} value, else the last non-empty line. Markdown emphasis, quotes and one trailing period go."""
    found = list(_FINAL.finditer(text))
    if found:
        answer = text[found[-1].end() :].strip().splitlines()[0] if text[found[-1].end() :].strip() else ""
    elif boxed := _BOXED.findall(text):
        answer = boxed[-1]
    else:
        answer = next((line for line in reversed(text.splitlines()) if line.strip()), "")
    for _ in range(2):  # "**$18.00**." : emphasis outside the period, or inside it
        answer = answer.strip().strip("*_`\"'").strip()
        if answer.endswith(".") and answer.count(".") == 1 or answer.endswith(".") and answer[:-1].endswith(("*", "`")):
            answer = answer[:-1]
    if boxed := _BOXED.findall(answer):
        answer = boxed[-1]
    return answer.strip()


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def has_answer_marker(text: str) -> bool:
    """Whether `text` marks its answer ("Final Answer:" or \\boxed{})."""
    return bool(_FINAL.search(text) or _BOXED.search(text))


def last_number(text: str) -> str | None:
    """The last number written in `text` (thousands separators dropped), or None."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None
