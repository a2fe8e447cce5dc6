"""A benchmark run directory: `run.json` (what was asked) + `results.jsonl` (one line per finished item).

The runner writes, the reports read; both go through `RunDir` so the format lives in one place.

Crash safety: each result is one `write` of one complete line followed by fsync, so a kill leaves at
most one torn last line. `RunDir.open` cuts that line off (the item simply runs again on `--resume`),
and `results()` keeps the first line per item id, so no item is ever counted twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentdistill.errors import AgentDistillError
from agentdistill.paths import atomic_write

ItemStatus = Literal["ok", "max_steps", "error", "timeout"]
RETRY = "retry_on_resume"  # meta flag of an error item whose model was unreachable: `--resume` runs it again
RUN_FILE, RESULTS_FILE, LOCK_FILE = "run.json", "results.jsonl", ".lock"
FORMAT_VERSION = 1


class RunDirError(AgentDistillError):
    """A run directory is missing, belongs to another run, or holds unreadable files."""


@dataclass(frozen=True)
class RunSpec:
    """What a run was asked to do; `--resume` refuses to continue a directory whose spec differs."""

    suite: str
    agent: str
    model: str  # model spec, e.g. local:qwen2.5-coder-0.5b
    item_ids: tuple[str, ...]  # the items of this run, in order (after --limit)
    seed: int = 0
    max_steps: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # agent options (e.g. codeact sag_n)
    kb: str | None = None  # the KB name asked for (None: the suite's own)
    embedder: str | None = None  # embedder of the suite's pooled KB (None: the default)
    label: str | None = None  # the name shown in reports (default: agent/model)
    items_sha256: str | None = None  # items_digest of item_ids' items (None: a run saved before digests)
    node_models: Mapping[str, str] = field(default_factory=dict)  # role or node -> student spec (--node-model)
    fallback: Mapping[str, Any] = field(default_factory=dict)  # FallbackPolicy fields; {}: node models never fall back
    created_at: float = field(default_factory=time.time)
    format_version: int = FORMAT_VERSION

    @property
    def name(self) -> str:
        nodes = ",".join(f"{name}={spec}" for name, spec in sorted(self.node_models.items()))
        return self.label or f"{self.agent}/{self.model}" + (f"[{nodes}]" if nodes else "")

    def same_work(self, other: RunSpec) -> bool:
        """Same suite, agent, model, items and settings: the results of one may be continued by the other."""
        keys = ("suite", "agent", "model", "item_ids", "seed", "max_steps", "options", "kb", "embedder", "node_models",
                "fallback")  # fmt: skip
        same = all(_plain(getattr(self, k)) == _plain(getattr(other, k)) for k in keys)
        digests = (self.items_sha256, other.items_sha256)
        return same and (None in digests or digests[0] == digests[1])

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunSpec:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        known["item_ids"] = tuple(known.get("item_ids", ()))
        return cls(**known)


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item: its score plus the cost figures that reports aggregate."""

    item_id: str
    status: ItemStatus
    correct: bool
    metrics: Mapping[str, float]  # em, f1, ... from the suite's metric
    answer: str | None
    gold: tuple[str, ...]
    run_id: str | None  # the trajectory in the store (None when the agent never started)
    steps: int = 0  # model calls
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)  # item meta (type, hops, ...) for breakdowns
    finished_at: float = field(default_factory=time.time)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ItemResult:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        known["gold"] = tuple(known.get("gold", ()))
        return cls(**known)


class RunDir:
    """One run's directory. `create` for a new run, `open` to read or resume one."""

    def __init__(self, path: Path, spec: RunSpec) -> None:
        self.path = path
        self.spec = spec

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    @classmethod
    def create(cls, path: str | Path, spec: RunSpec) -> RunDir:
        """Start a run in `path`; refuses a directory that already holds a run (use `open` + resume)."""
        path = Path(path)
        if (path / RUN_FILE).exists():
            raise RunDirError(f"{path} already holds a run: pass --resume to continue it, or choose another --run-dir.")
        path.mkdir(parents=True, exist_ok=True)
        with atomic_write(path / RUN_FILE) as f:
            json.dump(spec.to_dict(), f, indent=2)
        (path / RESULTS_FILE).touch()
        return cls(path, spec)

    @classmethod
    def open(cls, path: str | Path, *, repair: bool = False) -> RunDir:
        """Open an existing run; `repair=True` (the resuming writer) cuts off a torn last results line."""
        path = Path(path)
        run_file = path / RUN_FILE
        if not run_file.exists():
            raise RunDirError(f"{path} is not a benchmark run directory (no {RUN_FILE}): pass the --run-dir of a run.")
        try:
            spec = RunSpec.from_dict(json.loads(run_file.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise RunDirError(f"{run_file}: unreadable run spec ({exc}); the run cannot be resumed.") from exc
        run = cls(path, spec)
        if repair:
            run._cut_torn_tail()
        return run

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a process runs items of this run: a second one (two `--resume` at once) is refused, where it
        would redo every pending item beside the first and write a second line for each."""
        with open(self.path / LOCK_FILE, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RunDirError(
                    f"{self.path} is being run by {holder}: wait for it to finish (or stop it), then --resume."
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)

    def extend_items(self, item_ids: tuple[str, ...], items_sha256: str | None = None) -> None:
        """Grow the run to `item_ids`, which must start with the run's own items (results so far stay valid)."""
        if tuple(item_ids[: len(self.spec.item_ids)]) != tuple(self.spec.item_ids):
            raise RunDirError(
                f"{self.path} holds a run over other items than the {len(item_ids)} asked for (its items are not the"
                " first of them): continue it with its own settings, or choose another directory."
            )
        if len(item_ids) == len(self.spec.item_ids):
            if None not in (items_sha256, self.spec.items_sha256) and items_sha256 != self.spec.items_sha256:
                raise RunDirError(
                    f"{self.path}: the data of its items changed since the run started (same ids, another question or"
                    " answer): its results would mix two datasets; choose another directory."
                )
            return
        self.spec = dataclasses.replace(self.spec, item_ids=tuple(item_ids), items_sha256=items_sha256)
        with atomic_write(self.path / RUN_FILE) as f:
            json.dump(self.spec.to_dict(), f, indent=2)

    def append(self, result: ItemResult) -> None:
        """Add one finished item: a single write of one whole line, then fsync."""
        line = (json.dumps(result.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.results_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def results(self) -> list[ItemResult]:
        """Finished items in completion order, one per item id; a torn line is skipped.

        The first line of an item wins, except over a retryable error (RETRY): a later line replaces it.
        """
        seen: dict[str, ItemResult] = {}
        text = self.results_path.read_text(encoding="utf-8", errors="replace") if self.results_path.exists() else ""
        lines = text.splitlines()
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                result = ItemResult.from_dict(json.loads(raw))
            except (json.JSONDecodeError, TypeError) as exc:
                if number == len(lines):  # torn tail of a killed writer: that item is not finished
                    continue
                raise RunDirError(f"{self.results_path}:{number}: unreadable result line ({exc}).") from exc
            earlier = seen.get(result.item_id)
            if earlier is None or _retryable(earlier):
                seen[result.item_id] = result
        return list(seen.values())

    def done_ids(self) -> set[str]:
        """Items with a final result: a retryable error is not final, `--resume` runs it again."""
        return {r.item_id for r in self.results() if not _retryable(r)}

    def pending_ids(self) -> list[str]:
        """Items of the spec not finished yet, in spec order."""
        done = self.done_ids()
        return [i for i in self.spec.item_ids if i not in done]

    def _cut_torn_tail(self) -> None:
        data = self.results_path.read_bytes() if self.results_path.exists() else b""
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.results_path, "r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())


def _retryable(result: ItemResult) -> bool:
    return result.status == "error" and bool(result.meta.get(RETRY))


def _plain(value: Any) -> Any:
    """Tuples -> lists and mappings -> dicts, so specs compare and serialise the same before and after JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value
