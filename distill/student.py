"""A trained student on disk: its LoRA adapter, and the adapter merged into a plain HF dir that any engine serves.

Layout written by `save_student(adapter_dir, base_dir, out)`:

    out/student.json   what this is: base dir, LoRA r/alpha/targets, merged dtype (student_info.py reads it)
    out/adapter/       the peft adapter, its adapter_config.json pointing at the absolute base dir
    out/merged/        base + adapter merged: config.json, model.safetensors, tokenizer, chat template,
                       generation_config.json whose eos is the chat end token (so vLLM stops at end of turn)

`student:OUT/adapter` and `student:OUT/merged` load the same weights into the same graphs; the merged dir
decodes as fast as the base and needs no peft, so it is what `vllm serve` or `agentdistill serve` gets.
Merging runs in fp32 on the CPU (exact; a 0.5B model takes seconds); the merged weights are stored in
bf16 by default, which halves the disk and is what vLLM runs on a GPU anyway, while `hf:`/`student:` upcast
to fp32 on CPU. Pass dtype="float32" for weights bit-identical to base + adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdistill.errors import AgentDistillError, ModelNotFound
from agentdistill.paths import atomic_write, fsync_dir

INFO_FILE = "student.json"  # marks a dir save_student wrote; only such a dir is ever replaced
_FORMAT = 1  # bump when the layout changes
_DTYPES = ("bfloat16", "float32", "float16")
# Tokenizer files a trainer may have saved next to its adapter; they win over the base's (added tokens).
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
# Parameter-name fragments only a peft-wrapped model has: a merged dir with any of them would not load in vLLM.
_PEFT_MARKERS = ("lora_", "base_layer", "modules_to_save", "original_module", "base_model.model.")


class StudentExportError(AgentDistillError):
    """The adapter cannot be saved or merged as a student, or the merged dir would not load elsewhere."""


class StudentDirExists(AgentDistillError):
    """The output dir holds something that save_student did not write; it is never overwritten."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} exists and is not a student dir (no {INFO_FILE}): choose another output dir, or delete it first."
        )
        self.path = path


@dataclass(frozen=True)
class StudentDirs:
    """Where save_student put the student."""

    adapter: Path  # the peft adapter dir: `student:<adapter>` loads base + adapter
    merged: Path | None  # the merged plain HF dir (None when merge=False): `student:<merged>`, vLLM, export_gguf


def save_student(
    adapter_dir: str | Path,
    base_dir: str | Path,
    out_dir: str | Path,
    *,
    merge: bool = True,
    dtype: str = "bfloat16",
) -> StudentDirs:
    """Copy a trained peft adapter to `out_dir/adapter` and (with `merge`) merge it into `out_dir/merged`.

    All or nothing: everything is written into a temp dir next to `out_dir` and renamed into place, so a
    killed save leaves the previous student (or nothing), never half a dir. An existing `out_dir` is
    replaced only if a previous save_student wrote it. The merged dir is checked before it is published:
    the same tensor names as the base, no peft keys, architectures and dtype in config.json.
    """
    adapter_dir, base_dir, out_dir = Path(adapter_dir).expanduser(), Path(base_dir).expanduser(), Path(out_dir)
    out_dir = out_dir.expanduser().absolute()
    if dtype not in _DTYPES:
        raise StudentExportError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}: bfloat16 halves the disk.")
    adapter_config = read_adapter_config(adapter_dir)
    if not (base_dir / "config.json").is_file():
        raise ModelNotFound(
            f"base model dir {str(base_dir)!r} has no config.json: pass the HF dir the adapter was trained on"
            " (for a packaged model, the converted dir `ensure_hf_dir` returns)."
        )
    if out_dir.exists() and not _replaceable(out_dir):
        raise StudentDirExists(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a student dir is shared like any model dir
        base = base_dir.resolve()
        _copy_adapter(adapter_dir, tmp / "adapter", adapter_config, base)
        if merge:
            merge_adapter(tmp / "adapter", base, tmp / "merged", dtype=dtype)
            verify_merged(tmp / "merged", base)
        info = {
            "format": _FORMAT,
            "base": str(base),
            "source_adapter": str(adapter_dir.resolve()),
            "lora_r": adapter_config.get("r"),
            "lora_alpha": adapter_config.get("lora_alpha"),
            "target_modules": adapter_targets(adapter_config),
            "merged": merge,
            "merged_dtype": dtype if merge else None,
            "created_at": time.time(),
        }
        with atomic_write(tmp / INFO_FILE) as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StudentDirs(adapter=out_dir / "adapter", merged=out_dir / "merged" if merge else None)


def merge_adapter(adapter_dir: Path, base_dir: Path, out: Path, *, dtype: str = "bfloat16") -> None:
    """peft merge_and_unload of `adapter_dir` over `base_dir`, saved as a plain HF dir in `out`.

    Loads and merges in fp32 on the CPU whatever the target dtype: merging in bf16 would round the small
    LoRA update into the base weights twice.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer_dir = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_dir
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    except (OSError, ValueError) as exc:
        raise StudentExportError(
            f"no usable tokenizer in {tokenizer_dir} ({exc}): the merged dir must carry one; save the tokenizer"
            " next to the base model (or the adapter)."
        ) from exc
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    try:
        merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    except (ValueError, KeyError, RuntimeError) as exc:  # peft's ways of saying "this adapter is not for this base"
        raise StudentExportError(
            f"cannot apply adapter {adapter_dir} to base {base_dir}: {exc}. Pass the base the adapter was trained on."
        ) from exc
    merged = merged.to(getattr(torch, dtype))
    eos = end_of_turn_ids(tokenizer, merged.generation_config.eos_token_id)
    merged.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    if merged.generation_config.pad_token_id is None:
        merged.generation_config.pad_token_id = tokenizer.pad_token_id
    merged.save_pretrained(out)  # safetensors; the generation config is saved with it
    tokenizer.save_pretrained(out)
    _add_legacy_dtype(out / "config.json", dtype)
    for path in (p for p in out.iterdir() if p.is_file()):
        os.chmod(path, 0o644)  # some writers use private temp files
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def end_of_turn_ids(tokenizer: Any, current: int | list[int] | None = None) -> list[int]:
    """Token ids that end an assistant turn: the one the chat template puts after a reply, then the eos ids.

    vLLM stops at generation_config's eos ids; a base whose eos is `<|endoftext|>` while its template
    ends turns with `<|im_end|>` would otherwise talk on past the end of its answer.
    """
    ids: list[int] = []
    if getattr(tokenizer, "chat_template", None):
        sentinel = "Zq7Xw"  # a string no template contains, to find where the reply ends
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": sentinel}], tokenize=False
        )
        tail = rendered.split(sentinel, 1)[-1]
        tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail.strip() else []
        special = set(tokenizer.all_special_ids) | {
            i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)
        }
        if tail_ids and tail_ids[0] in special:
            ids.append(tail_ids[0])
    extra = current if isinstance(current, list) else [current]
    for token in [*extra, tokenizer.eos_token_id]:
        if token is not None and token not in ids:
            ids.append(token)
    return ids


def verify_merged(merged_dir: str | Path, base_dir: str | Path | None = None) -> None:
    """Raise StudentExportError unless `merged_dir` is a plain HF dir vLLM and transformers load as the base arch.

    Offline checks only: config.json names architectures and a dtype; the safetensors carry no peft
    keys and (given `base_dir`) exactly the base's tensor names; tokenizer and chat template are there.
    """
    merged_dir = Path(merged_dir)
    problems: list[str] = []
    config = read_json(merged_dir / "config.json")
    if not config.get("architectures"):
        problems.append("config.json has no `architectures` (vLLM picks the model class from it)")
    if not (config.get("dtype") or config.get("torch_dtype")):
        problems.append("config.json has no `dtype`/`torch_dtype`")
    names = tensor_names(merged_dir)
    peft_keys = sorted(n for n in names if any(marker in n for marker in _PEFT_MARKERS))
    if peft_keys:
        problems.append(f"peft keys left in the weights: {', '.join(peft_keys[:3])}")
    if base_dir is not None:
        base_names = tensor_names(Path(base_dir))
        missing, extra = sorted(base_names - names), sorted(names - base_names)
        if missing or extra:
            problems.append(f"tensor names differ from the base: missing {missing[:3]}, unexpected {extra[:3]}")
    if not (merged_dir / "tokenizer_config.json").is_file():
        problems.append("no tokenizer_config.json")
    elif not (
        (merged_dir / "chat_template.jinja").is_file()
        or read_json(merged_dir / "tokenizer_config.json").get("chat_template")
    ):
        problems.append("no chat template (chat_template.jinja or tokenizer_config.json)")
    if problems:
        raise StudentExportError(f"merged dir {merged_dir} would not load as a plain model: {'; '.join(problems)}.")


def tensor_names(model_dir: Path) -> set[str]:
    """Names of the tensors in a dir's safetensors (single file or sharded with an index), read from headers."""
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return set(read_json(index).get("weight_map", {}))
    single = model_dir / "model.safetensors"
    if not single.is_file():
        raise StudentExportError(f"{model_dir} has no model.safetensors: save the model with safe_serialization.")
    with safe_open(single, framework="pt") as handle:
        return set(handle.keys())


# helpers -----------------------------------------------------------------------------------------


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """adapter_config.json of a LoRA adapter dir with safetensors weights; anything else raises, saying why."""
    if (adapter_dir / "config.json").is_file() and not (adapter_dir / "adapter_config.json").is_file():
        raise StudentExportError(
            f"{adapter_dir} is a full model dir (config.json, no adapter_config.json): a fully fine-tuned student"
            f" needs no merge; load it as `student:{adapter_dir}`."
        )
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelNotFound(
            f"adapter dir {str(adapter_dir)!r} has no adapter_config.json: point at the dir the trainer saved its"
            " LoRA adapter in (TrainResult.adapter_dir)."
        )
    config = read_json(adapter_dir / "adapter_config.json")
    if config.get("peft_type", "LORA") != "LORA":
        raise StudentExportError(f"{adapter_dir} holds a {config.get('peft_type')} adapter: only LoRA is supported.")
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise StudentExportError(
            f"{adapter_dir} has no adapter_model.safetensors (pickled .bin files are not loaded): save the adapter"
            " with save_pretrained(..., safe_serialization=True)."
        )
    return config


def _copy_adapter(source: Path, dest: Path, config: dict[str, Any], base: Path) -> None:
    """The adapter weights and any tokenizer files, with adapter_config.json naming the absolute base dir."""
    dest.mkdir(parents=True)
    shutil.copy2(source / "adapter_model.safetensors", dest / "adapter_model.safetensors")
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
    with atomic_write(dest / "adapter_config.json") as handle:
        json.dump({**config, "base_model_name_or_path": str(base)}, handle, indent=2, sort_keys=True)


def _add_legacy_dtype(config_path: Path, dtype: str) -> None:
    """transformers 5 writes `dtype`; vLLM builds on transformers 4 read `torch_dtype`: write both."""
    config = read_json(config_path)
    config["dtype"] = config.get("dtype") or dtype
    config.setdefault("torch_dtype", config["dtype"])
    with atomic_write(config_path) as handle:
        json.dump(config, handle, indent=2, sort_keys=True)


def _replaceable(out_dir: Path) -> bool:
    return out_dir.is_dir() and ((out_dir / INFO_FILE).is_file() or not any(out_dir.iterdir()))


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished temp dir to out_dir; a previous student there is moved aside first, then deleted."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "student")
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if old is not None:  # put the previous student back rather than leave nothing
            os.replace(old / "student", out_dir)
        raise
    finally:
        fsync_dir(out_dir.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def adapter_targets(config: dict[str, Any]) -> list[str]:
    """The sorted target modules an adapter config names (peft allows one string or a list)."""
    targets = config.get("target_modules") or []
    return sorted({targets} if isinstance(targets, str) else set(targets))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a model dir; a missing, broken or non-object file raises, saying what to do."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelNotFound(f"{path} does not exist: is this the dir save_pretrained or save_student wrote?") from exc
    except json.JSONDecodeError as exc:
        raise StudentExportError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}): re-save it.") from exc
    if not isinstance(data, dict):
        raise StudentExportError(f"{path} is not a JSON object: re-save it.")
    return data


__all__ = [
    "StudentDirExists",
    "StudentDirs",
    "StudentExportError",
    "end_of_turn_ids",
    "merge_adapter",
    "save_student",
    "tensor_names",
    "verify_merged",
]
