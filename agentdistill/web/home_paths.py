"""The one rule for any path a request names (`?dir=`, a plot): it must resolve to a place inside the home.

The bench and distill pages read run directories and serve their PNGs; a path from a request is resolved
(symlinks and `..` included) before the check, so neither `../../etc` nor a link inside the home that points
out of it reaches a file outside. Relative paths are relative to the home, which is also how links name them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from agentdistill.errors import AgentDistillError

RUN_MARKERS = ("run.json", "plan.json")  # a bench run dir, a distill run dir: not searched further down


class OutsideHome(AgentDistillError):
    """A requested path resolves outside the home."""


class NotFoundInHome(AgentDistillError):
    """A requested path inside the home that does not exist or is not what the page needs."""


def inside_home(home: Path, raw: str) -> Path:
    """`raw` (absolute, or relative to the home) resolved; OutsideHome when it is not the home or inside it."""
    if not raw or not raw.strip() or "\x00" in raw:
        raise OutsideHome("give a directory inside the home, e.g. ?dir=bench/RUN (relative to the home).")
    root = home.resolve()
    candidate = Path(raw.strip())
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if path != root and not path.is_relative_to(root):
        raise OutsideHome(f"{raw!r} is outside the home ({root}): the UI reads only run directories inside it.")
    return path


def existing_dir(home: Path, raw: str) -> Path:
    """inside_home, and an existing directory; NotFoundInHome otherwise."""
    path = inside_home(home, raw)
    if not path.is_dir():
        raise NotFoundInHome(f"{raw!r} is not a directory in the home ({home.resolve()}).")
    return path


def home_relative(home: Path, path: Path) -> str:
    """How links name `path`: relative to the home ("." for the home itself)."""
    return str(path.resolve().relative_to(home.resolve())) if path.resolve() != home.resolve() else "."


def find_dirs(root: Path, marker: str, *, depth: int = 4) -> Iterator[Path]:
    """Directories under `root` (itself included) holding `marker`, down to `depth` levels, in name order.

    Links are not followed; a found directory is not searched further, nor one below the root holding the other
    marker (the bench list skips distill runs, unless it is asked for one: then it lists that run's bench runs)."""
    if not root.is_dir():
        return
    pending = [(root, 0)]
    while pending:
        folder, level = pending.pop()
        if (folder / marker).is_file():
            yield folder
            continue
        if level >= depth or (level and any((folder / m).is_file() for m in RUN_MARKERS if m != marker)):
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        pending.extend((Path(e.path), level + 1) for e in reversed(entries) if e.is_dir(follow_symlinks=False))
