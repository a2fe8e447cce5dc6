"""Pieces every agent graph shares: prompt templates, question validation, run status bookkeeping."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from agentdistill.errors import AgentDistillError

Status = Literal["running", "ok", "max_steps", "error"]


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


def max_steps_message(max_steps: int) -> str:
    return f"stopped after {max_steps} steps without a final answer (raise max_steps or check the model's format)"
