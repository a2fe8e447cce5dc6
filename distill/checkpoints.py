"""Training checkpoints that are either whole and verified, or not there at all; plus the run's metrics files.

A checkpoint is a dir `step-NNNNNNN/` holding the trainable weights (safetensors), optimizer and scheduler
state, each process's RNG state, and `manifest.json` with the sha256 of every file. It is written into a
temp dir and renamed into place, so a kill mid-write leaves no dir that looks finished; a flipped byte
later is caught by the hash before anything is loaded. Only `torch.load(weights_only=True)` reads the
.pt files, so a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from agentdistill.errors import AgentDistillError
from agentdistill.paths import atomic_write, fsync_dir

KEEP = 2  # checkpoints kept: the newest, and one to fall back to if the newest turns out bad
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CorruptCheckpoint(AgentDistillError):
    """A checkpoint file is missing or its bytes differ from the manifest; it is refused, never loaded."""


class CheckpointMismatch(AgentDistillError):
    """The checkpoint in out_dir was written by a run with other settings, so resuming would train a hybrid."""


def step_dirs(root: Path) -> list[Path]:
    """Finished checkpoints under `root`, oldest first (temp dirs of interrupted writes are not listed)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(ckpt: Path) -> dict[str, Any]:
    """The manifest of `ckpt` after checking every file it lists; raises CorruptCheckpoint naming the bad file."""
    older = [p for p in step_dirs(ckpt.parent) if p != ckpt]
    fallback = f"resume from {older[-1].name}" if older else "start over"
    fix = f"delete {ckpt} to {fallback}, or train into a new --out"
    try:
        manifest = json.loads((ckpt / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorruptCheckpoint(f"checkpoint {ckpt} has no readable manifest.json ({error}): {fix}.") from error
    for name, expected in files.items():
        path = ckpt / name
        if not path.is_file():
            raise CorruptCheckpoint(f"checkpoint file {path} is missing: {fix}.")
        actual = sha256_file(path)
        if actual != expected["sha256"]:
            raise CorruptCheckpoint(
                f"checkpoint file {path} is corrupt: sha256 {actual[:16]}… but the manifest says"
                f" {expected['sha256'][:16]}…; {fix}."
            )
    return manifest


def find_resume_point(root: Path, config: Mapping[str, Any], free: frozenset[str], world: int) -> Path | None:
    """The newest checkpoint, verified and checked against this run's settings; None to start fresh."""
    found = step_dirs(root)
    if not found:
        return None
    latest = found[-1]
    manifest = verify_checkpoint(latest)
    changed = sorted(k for k, v in manifest.get("config", {}).items() if k not in free and config.get(k) != v)
    if changed:
        raise CheckpointMismatch(
            f"checkpoint {latest} was written with other settings ({', '.join(changed)}); resuming would mix two"
            " runs. Use the same settings, or train into a new --out."
        )
    if manifest.get("world_size") != world:
        raise CheckpointMismatch(
            f"checkpoint {latest} was written by {manifest.get('world_size')} processes, this run has {world}: the"
            " data order depends on it. Resume with the same process count, or train into a new --out."
        )
    return latest


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                    accelerator: Any, config: Mapping[str, Any]) -> Path:  # fmt: skip
    """Write checkpoint `step` (every process calls this: RNG per process, optimizer shards under FSDP)."""
    from accelerate.utils import DistributedType
    from safetensors.torch import save_file

    main, rank = accelerator.is_main_process, accelerator.process_index
    sharded = accelerator.distributed_type == DistributedType.FSDP
    final, tmp = root / f"step-{step:07d}", root / f".tmp-step-{step:07d}"
    if main:
        for stale in root.glob(".tmp-step-*"):  # leftovers of a run killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    _save_pt(rng, tmp / f"rng-{rank}.pt")
    if sharded:
        _save_pt(optimizer.state_dict(), tmp / f"optimizer-{rank}.pt")
    state = accelerator.get_state_dict(model)  # a collective under FSDP
    accelerator.wait_for_everyone()
    if main:
        trainable = [name for name, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad]
        save_file(
            {name: state[name].detach().cpu().contiguous() for name in trainable}, str(tmp / "weights.safetensors")
        )
        if not sharded:  # DDP keeps identical optimizer state on every process: one copy is enough
            _save_pt(optimizer.state_dict(), tmp / "optimizer.pt")
        _save_pt(scheduler.state_dict(), tmp / "scheduler.pt")
        files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir())}
        manifest = {"step": step, "world_size": accelerator.num_processes, "config": dict(config), "files": files}
        with atomic_write(tmp / "manifest.json") as handle:
            json.dump(manifest, handle, indent=2)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        fsync_dir(root)
        for old in step_dirs(root)[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_weights(ckpt: Path, model: torch.nn.Module) -> None:
    """Copy the checkpoint's trainable weights into the unwrapped model (before accelerate wraps it)."""
    from safetensors.torch import load_file

    saved = load_file(str(ckpt / "weights.safetensors"))
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = sorted(set(trainable) - set(saved))
    if missing:
        raise CheckpointMismatch(
            f"checkpoint {ckpt} lacks {len(missing)} trainable weights (e.g. {missing[0]}): it belongs to another"
            " model or adapter layout. Train into a new --out."
        )
    with torch.no_grad():
        for name, param in trainable.items():
            param.copy_(saved[name])


def load_trainer_state(ckpt: Path, *, optimizer: Any, scheduler: Any, rank: int, device: torch.device) -> int:
    """Restore optimizer, scheduler and this process's RNG; returns the step the checkpoint was taken at."""
    sharded = (ckpt / f"optimizer-{rank}.pt").is_file()
    optimizer.load_state_dict(_load_pt(ckpt / (f"optimizer-{rank}.pt" if sharded else "optimizer.pt"), device))
    scheduler.load_state_dict(_load_pt(ckpt / "scheduler.pt", torch.device("cpu")))
    rng = _load_pt(ckpt / f"rng-{rank}.pt", torch.device("cpu"))
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(rng["cuda"]))
    return int(json.loads((ckpt / "manifest.json").read_text(encoding="utf-8"))["step"])


def _save_pt(obj: Any, path: Path) -> None:
    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def _load_pt(path: Path, device: torch.device) -> Any:
    return torch.load(path, map_location=device, weights_only=True)


def read_metrics(path: Path, *, up_to: int | None = None) -> list[dict[str, Any]]:
    """Rows of a metrics JSONL (a line cut by a kill is skipped), keeping steps <= up_to when given."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and (up_to is None or row.get("step", 0) <= up_to):
            rows.append(row)
    return rows


def write_loss_plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Train and val loss against step as a PNG; None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(7, 4), dpi=100)  # no pyplot: no global figure registry, no GUI backend
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss", linewidth=1)
    if val:
        axes.plot(*zip(*val, strict=True), marker="o", label="val loss")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    if train or val:
        axes.legend()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path


__all__ = [
    "CheckpointMismatch",
    "CorruptCheckpoint",
    "find_resume_point",
    "load_trainer_state",
    "load_weights",
    "read_metrics",
    "save_checkpoint",
    "verify_checkpoint",
    "write_loss_plot",
]
