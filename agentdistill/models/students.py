"""Distilled students shipped inside the package: small LoRA adapters over a packaged base model.

Each lives in `agentdistill/data/students/<name>/` with the peft adapter files and `card.json` (the model
card: base, agent, teacher, dataset hash, the command that reproduces it, held-out scores). `student:NAME`
loads the base (a packaged model, converted once) with the adapter merged in, so a student runs in every
graph, `chat`, `serve` and `bench` like any other spec; `student:DIR` still loads a trained dir.
Students a user publishes (`distill publish`) live in `<home>/students/<name>/` and load the same way.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from agentdistill.errors import ModelNotFound, ModelUnavailable
from agentdistill.models.base import ModelOptions
from agentdistill.paths import home_dir

CARD = "card.json"


@dataclass(frozen=True)
class StudentCard:
    """What `card.json` says about a shipped student."""

    name: str
    base: str  # spec of the base model, e.g. local:smollm2-135m
    agent: str  # the graph it was distilled for
    teacher: str
    description: str = ""
    dataset: dict[str, Any] = field(default_factory=dict)  # data_sha256, examples, suite, prompt_hash
    command: str = ""  # reproduces it from scratch
    scores: dict[str, Any] = field(default_factory=dict)  # held-out figures
    license: str = ""
    path: Path = Path()

    @property
    def spec(self) -> str:
        return f"student:{self.name}"

    def headline(self) -> str:
        """The held-out figure against the teacher, e.g. "parse_accuracy 0.620 vs teacher 0.550 (n=100)"."""
        student, teacher = self.scores.get("student"), self.scores.get("teacher")
        if not isinstance(student, dict):
            return ", ".join(f"{k} {v}" for k, v in self.scores.items() if not isinstance(v, dict))
        key = headline_key(student)
        if key is None:
            return ""
        versus = f" vs teacher {teacher[key]:.3f}" if isinstance(teacher, dict) and key in teacher else ""
        return f"{key} {student[key]:.3f}{versus} (n={student.get('n')})"


def headline_key(scores: dict[str, Any]) -> str | None:
    """The figure that sums up one evaluated model of a card: parse accuracy (recbot), else accuracy, else F1."""
    return next((key for key in ("parse_accuracy", "accuracy", "f1") if key in scores), None)


def students_root() -> Path:
    return Path(str(resources.files("agentdistill") / "data" / "students"))


def user_students_root() -> Path:
    return home_dir() / "students"


def packaged_students(root: Path | None = None) -> list[StudentCard]:
    """Every student with a readable card, by name: shipped ones, then the user's (or those under `root`)."""
    roots = [root] if root is not None else [students_root(), user_students_root()]
    cards: dict[str, StudentCard] = {}
    for base in roots:
        for folder in sorted(base.iterdir()) if base.is_dir() else ():
            if (folder / CARD).is_file() and not folder.name.startswith("."):
                cards.setdefault(folder.name, read_card(folder))  # a shipped student keeps its name
    return list(cards.values())


def read_card(folder: Path) -> StudentCard:
    data = json.loads((folder / CARD).read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(StudentCard)} - {"path"}
    return StudentCard(**{k: v for k, v in data.items() if k in known}, path=folder)


def find_student(name: str, root: Path | None = None) -> StudentCard | None:
    return next((card for card in packaged_students(root) if card.name == name), None)


def load_student(name: str, options: ModelOptions, root: Path | None = None) -> Any:
    """`student:NAME`: the shipped adapter merged into its packaged base; errors name the fix."""
    from agentdistill.models.packaged import ensure_hf_dir, find_packaged, is_installed
    from agentdistill.models.transformers_backend import cached_load
    from agentdistill.paths import cache_dir

    card = find_student(name, root)
    if card is None:
        known = ", ".join(c.name for c in packaged_students(root)) or "none shipped"
        raise ModelNotFound(
            f"no student {name!r}: give a trained student's dir (student:DIR) or a shipped one ({known});"
            " `agentdistill models list` shows them."
        )
    backend, _, base_name = card.base.partition(":")
    if backend not in ("local", "transformers"):
        raise ModelNotFound(f"student {name!r} names base {card.base!r}: a shipped student's base must be local:NAME")
    pm = find_packaged(base_name)
    ok, why = is_installed(pm)
    if not ok:
        raise ModelUnavailable(f"student {name!r} is an adapter over {card.base}, which is not installed: {why}")
    base_dir = ensure_hf_dir(pm, cache_dir())
    return cached_load(base_dir, dataclasses.replace(options, adapter=str(card.path)), spec=card.spec)
