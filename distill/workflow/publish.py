"""Publish a `distill run` as a named student: its LoRA adapter and a model card, loadable as `student:NAME`.

The card is written from what the run left on disk, never typed by hand: the plan (teacher, student base,
agent, suite, options, training settings) gives the `distill run` command that reproduces the student,
data/info.json gives the dataset's version (sha256, teacher, prompt hash, filters) and report/compare.json
gives the held-out scores of teacher, base student and trained student on the same items, with the paired
test. The folder is assembled beside its destination and renamed into place, so a killed publish leaves
either the old student or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentdistill.distill.hub_card import write_hub_readme
from agentdistill.distill.workflow.compress import compressed_dir, compressed_ranks, eval_label
from agentdistill.errors import AgentDistillError
from agentdistill.models.students import CARD, StudentCard, read_card
from agentdistill.paths import atomic_write, fsync_dir

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# compare.json figures worth a card: how well, how sure, how fast, how much
SCORE_KEYS = ("n", "correct", "accuracy", "accuracy_ci95", "f1", "parse_accuracy", "hit_at_k", "latency_p50",
              "tokens_mean")  # fmt: skip
# `distill run` flags whose plan.json value differs from the CLI default, in the order `--help` lists them
FLAG_DEFAULTS: Mapping[str, Any] = {"train_limit": 20, "eval_limit": 10, "method": "sft", "kd_teacher": None,
                                    "kd_kind": "forward", "max_steps": None, "embedder": None}  # fmt: skip
TRAIN_FLAG_DEFAULTS: Mapping[str, Any] = {"epochs": 2, "max_steps": None, "lr": 2e-4, "batch_size": 2,
                                          "grad_accum": 2, "max_len": 2048, "lora_r": 64}  # fmt: skip


class PublishError(AgentDistillError):
    """The run cannot be published as it stands; the message says which file is missing or wrong."""


def publish_student(
    out: Path,
    name: str,
    dest_root: Path,
    *,
    description: str = "",
    license: str = "",
    force: bool = False,
    rank: int | None = None,
) -> StudentCard:
    """Copy `out`'s trained adapter to `dest_root/name` with a card; `student:name` then loads it.

    A --full run ships the adapter `distill compress` extracted from it (`rank` picks one when there are
    several); the card's scores are then that adapter's, with the full model's beside them as student-full.
    A LoRA run ships its own adapter, or with `rank` the smaller one `distill compress --rank` cut from it.
    """
    out = Path(out)
    if not name or "/" in name or name.startswith(".") or name != name.strip():
        raise PublishError(f"student name {name!r} must be a plain folder name, e.g. recbot-parser-135m")
    plan = _read_json(out / "plan.json", "run `agentdistill distill run --out DIR` first; DIR holds plan.json")
    full = not plan.get("train", {}).get("lora", True)
    rank = _chosen_rank(out, rank) if full or rank is not None else None  # a LoRA run ships its own by default
    adapter = out / "student" / "adapter" if rank is None else compressed_dir(out, rank) / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise PublishError(f"{adapter} holds no LoRA adapter: finish the run (`agentdistill distill run` with"
                           " --out) before publishing it")  # fmt: skip
    if not str(plan.get("student", "")).startswith("local:"):
        raise PublishError(f"{out}/plan.json has student {plan.get('student')!r}: a published student's base must be"
                           " a packaged model (local:NAME) so that every install can load it")  # fmt: skip
    info = _read_json(out / "data" / "info.json", f"run `agentdistill distill dataset` for {out} first")
    compare = _read_json(out / "report" / "compare.json", f"run `agentdistill distill eval --out {out}` first")
    card = {
        "name": name,
        "base": plan["student"],
        "agent": plan["agent"],
        "teacher": plan["teacher"],
        "description": description,
        "dataset": _dataset(plan, info),
        "command": plan_command(plan, out_hint=f"runs/{name}"),
        "scores": _shipped_scores(eval_scores(compare), out, rank,
                                  trained="student-full" if full else f"student-r{plan['train'].get('lora_r')}"),
        "license": license,
        "training": {k: plan["train"].get(k) for k in ("lora_r", "lora_alpha", "target_modules", "lr", "epochs",
                                                        "max_steps", "batch_size", "grad_accum", "seed")},
    }  # fmt: skip
    if rank is not None:  # how much of the trained weight change the shipped adapter keeps
        extract = _read_json(adapter / "extract.json", f"run `agentdistill distill compress {out}` again")
        card["training"]["full_fine_tune"] = full
        card["compressed"] = {k: _rounded(extract.get(k)) for k in ("rank", "kept", "linear_share", "left_out")}
        card["command"] += f" && agentdistill distill compress runs/{name} --rank {rank}"
    target = Path(dest_root) / name
    if target.exists() and not force:
        raise PublishError(f"{target} exists: pass --force to replace that student")
    staging = Path(dest_root) / f".{name}.publishing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in ADAPTER_FILES:
        if not (adapter / file).is_file():
            raise PublishError(f"{adapter / file} is missing: the adapter was not saved whole; train again")
        shutil.copyfile(adapter / file, staging / file)
    with atomic_write(staging / CARD) as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    write_hub_readme(staging, card)  # the folder is a Hub repo as it stands
    if target.exists():
        retired = Path(dest_root) / f".{name}.replaced"
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)
    fsync_dir(Path(dest_root))
    return read_card(target)


def _chosen_rank(out: Path, rank: int | None) -> int:
    """The rank of the adapter `distill compress` extracted from the run (`rank`, or the only one)."""
    found = compressed_ranks(out)
    if not found and rank is not None:
        raise PublishError(f"{out} has no rank-{rank} adapter: run `agentdistill distill compress {out} --rank {rank}`"
                           " first")  # fmt: skip
    if not found:
        raise PublishError(
            f"{out} is a full fine-tune (a whole model, too big to ship): run `agentdistill distill compress {out}"
            " --rank 64` to extract and evaluate a LoRA adapter of it first, then publish again."
        )
    if rank is None and len(found) > 1:
        raise PublishError(f"{out} has adapters of rank {', '.join(map(str, found))}: pick one with --rank")
    chosen = rank if rank is not None else found[0]
    if chosen not in found:
        raise PublishError(f"{out} has no rank-{chosen} adapter (ranks: {', '.join(map(str, found))}):"
                           f" run `agentdistill distill compress {out} --rank {chosen}` first")  # fmt: skip
    return chosen


def _shipped_scores(scores: dict[str, Any], out: Path, rank: int | None, *, trained: str) -> dict[str, Any]:
    """A compressed adapter's own eval becomes `student`; the model it came from is kept under `trained`
    (student-full for a full fine-tune, student-r<R> for the LoRA adapter it was cut from)."""
    if rank is None:
        return scores
    own = scores.pop(eval_label(rank), None)
    if own is None:
        raise PublishError(f"{compressed_dir(out, rank) / 'adapter'} has not been evaluated: run"
                           f" `agentdistill distill compress {out} --rank {rank}`")  # fmt: skip
    if "student" in scores:
        scores[trained] = scores.pop("student")
    return {**scores, "student": own}


def eval_scores(compare: Mapping[str, Any]) -> dict[str, Any]:
    """{label: figures} of each evaluated model on the shared items, plus the paired test of the last two."""
    runs = compare.get("runs") or []
    rows = compare.get("compared") or compare.get("full") or []
    scores: dict[str, Any] = {}
    for run, row in zip(runs, rows, strict=False):
        label = str(run.get("spec", {}).get("label") or run.get("name") or "")
        key = label.split(" (", 1)[0]  # "student (gguf:...)" -> student
        scores[key] = {"model": run.get("spec", {}).get("model"),
                       **{k: _rounded(row[k]) for k in SCORE_KEYS if row.get(k) is not None}}  # fmt: skip
    paired = compare.get("paired")
    if paired:
        scores["paired"] = {k: _rounded(v) for k, v in paired.items()}
    return scores


def plan_command(plan: Mapping[str, Any], *, out_hint: str) -> str:
    """The `agentdistill distill run` line that reproduces the plan (flags left at their default are left out)."""
    parts = ["agentdistill distill run", f"--agent {plan['agent']}", f"--suite {plan['suite']}",
             f"--teacher {plan['teacher']}", f"--student {plan['student']}"]  # fmt: skip
    for key, default in FLAG_DEFAULTS.items():
        if plan.get(key, default) != default:
            parts.append(f"--{key.replace('_', '-')} {plan[key]}")
    train = plan.get("train") or {}
    if not train.get("lora", True):
        parts.append("--full")
    for key, default in TRAIN_FLAG_DEFAULTS.items():
        value = train.get(key, default)
        if value != default:
            parts.append(f"--{'train-steps' if key == 'max_steps' else key.replace('_', '-')} {value}")
    for key, value in (plan.get("options") or {}).items():
        parts.append(f"--option {key}={_cli_value(value)}")
    if plan.get("roles"):
        parts.append(f"--roles {','.join(plan['roles'])}")
    if plan.get("min_score", 1.0) != 1.0:
        parts.append(f"--min-score {-1 if plan['min_score'] is None else plan['min_score']}")
    for key, value in (plan.get("min_metrics") or {}).items():
        parts.append(f"--min-metric {key}={value:g}")
    if plan.get("keep_parse_errors"):
        parts.append("--keep-parse-errors")
    parts.append(f"--out {out_hint}")
    return " ".join(parts)


def _dataset(plan: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
    version = info.get("version") or {}
    return {"suite": plan["suite"], "train_limit": plan.get("train_limit"), "runs": info.get("runs"),
            "train_examples": info.get("train"), "val_examples": info.get("val"),
            "data_sha256": version.get("data_sha256"), "teachers": version.get("teachers"),
            "prompt_hashes": version.get("prompt_hashes")}  # fmt: skip


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, Mapping):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_rounded(v) for v in value]
    return value


def _read_json(path: Path, fix: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PublishError(f"{path} is missing: {fix}") from None
    except json.JSONDecodeError as exc:
        raise PublishError(f"{path} line {exc.lineno}: not JSON ({exc.msg})") from None
