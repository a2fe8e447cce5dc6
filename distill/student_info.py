"""What a student dir holds, and the model spec that loads it.

`student_info` describes a dir save_student wrote (student.py), its adapter/ or merged/ subdir, or any plain
adapter or HF model dir; `load_student_spec` picks the `student:` spec to load, the merged dir when there is one.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentdistill.distill.student import INFO_FILE, adapter_targets, read_adapter_config, read_json
from agentdistill.errors import ModelNotFound


@dataclass(frozen=True)
class StudentInfo:
    """What a student dir holds, for `models info`-style listings and the distill report."""

    path: Path  # the dir that was inspected
    base: str | None  # base model dir the adapter applies to (None for a bare merged/full model dir)
    adapter: Path | None  # adapter dir, when there is one
    merged: Path | None  # merged HF dir, when there is one
    lora_r: int | None  # LoRA rank
    lora_alpha: float | None  # LoRA alpha (the update is scaled by alpha / r)
    target_modules: tuple[str, ...]  # modules the adapter changes, as adapter_config.json lists them
    merged_dtype: str | None  # dtype the merged weights are stored in
    size_bytes: int  # everything under `path` on disk

    @property
    def is_merged(self) -> bool:
        return self.merged is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            {k: str(v) if v is not None else None for k, v in data.items() if isinstance(v, Path)},
            target_modules=list(self.target_modules),
            is_merged=self.is_merged,
        )
        return data


def student_info(directory: str | Path) -> StudentInfo:
    """Describe a student: a dir save_student wrote, its adapter/ or merged/ subdir, or any adapter/HF dir."""
    path = Path(directory).expanduser().absolute()
    root = path if (path / INFO_FILE).is_file() else path.parent if (path.parent / INFO_FILE).is_file() else None
    if root is not None:
        info = read_json(root / INFO_FILE)
        adapter = root / "adapter" if path == root or path.name == "adapter" else None
        merged = root / "merged" if (root / "merged").is_dir() and (path == root or path.name == "merged") else None
        config = read_json(root / "adapter" / "adapter_config.json") if (root / "adapter").is_dir() else {}
        return StudentInfo(
            path=path,
            base=info.get("base"),
            adapter=adapter,
            merged=merged,
            lora_r=config.get("r", info.get("lora_r")),
            lora_alpha=config.get("lora_alpha", info.get("lora_alpha")),
            target_modules=tuple(adapter_targets(config) if config else info.get("target_modules") or ()),
            merged_dtype=info.get("merged_dtype") if merged else None,
            size_bytes=_size(path),
        )
    if (path / "adapter_config.json").is_file():
        config = read_adapter_config(path)
        return StudentInfo(
            path=path,
            base=config.get("base_model_name_or_path"),
            adapter=path,
            merged=None,
            lora_r=config.get("r"),
            lora_alpha=config.get("lora_alpha"),
            target_modules=tuple(adapter_targets(config)),
            merged_dtype=None,
            size_bytes=_size(path),
        )
    if (path / "config.json").is_file():
        config = read_json(path / "config.json")
        dtype = config.get("dtype") or config.get("torch_dtype")
        return StudentInfo(
            path=path,
            base=None,
            adapter=None,
            merged=path,
            lora_r=None,
            lora_alpha=None,
            target_modules=(),
            merged_dtype=dtype,
            size_bytes=_size(path),
        )
    raise ModelNotFound(
        f"{path} is not a student dir: expected {INFO_FILE} (from save_student), adapter_config.json or config.json."
    )


def load_student_spec(directory: str | Path) -> str:
    """The model spec that loads this student: its merged dir when there is one (faster, no peft), else the adapter."""
    info = student_info(directory)
    chosen = info.merged or info.adapter
    if chosen is None:  # unreachable: student_info names one or raises
        raise ModelNotFound(f"{directory} holds neither a merged model nor an adapter.")
    return f"student:{chosen}"


def _size(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


__all__ = ["StudentInfo", "load_student_spec", "student_info"]
