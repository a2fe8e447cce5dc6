"""A fully fine-tuned student, shipped small: its weight change compressed to a LoRA adapter by truncated SVD.

A full fine-tune often learns what a LoRA of the same steps does not (the recbot parser: 0.53 vs 0.33), but
it is a whole model (538 MB for SmolLM2-135M), too big to ship in a wheel. Each linear layer's change
`delta = W_tuned - W_base` is factored as `U S V^T`; keeping the top `rank` singular directions gives the
best rank-r approximation in Frobenius norm, written as peft's `lora_B @ lora_A` with scaling 1
(`lora_alpha = r`). What a LoRA cannot hold (the change to embeddings and norms) is reported, not hidden:
the adapter is then evaluated like any student, and its own held-out scores go on its card.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentdistill.distill.student import StudentExportError
from agentdistill.paths import atomic_write

LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_PREFIX = "base_model.model."


@dataclass(frozen=True)
class ExtractReport:
    """How much of the fine-tune's weight change the adapter keeps."""

    rank: int
    modules: int  # linear layers given an adapter
    kept: float  # share of the linear layers' squared change the rank-r factors keep
    linear_share: float  # share of the whole squared change that sits in those linear layers
    left_out: dict[str, float]  # other changed tensors (embeddings, norms) -> their share of the whole change
    adapter_bytes: int

    def describe(self) -> str:
        largest = sorted(self.left_out.items(), key=lambda item: -item[1])[:3]
        lost = ", ".join(f"{name} {share:.1%}" for name, share in largest)
        return (
            f"rank {self.rank} over {self.modules} linear layers keeps {self.kept:.1%} of their weight change"
            f" ({self.linear_share:.1%} of the whole change; not representable: {lost or 'nothing'});"
            f" adapter {self.adapter_bytes / 2**20:.1f} MiB"
        )


def extract_lora(
    base_dir: Path,
    tuned_dir: Path,
    out_dir: Path,
    *,
    rank: int,
    targets: Iterable[str] = LINEAR_TARGETS,
    dtype: str = "float16",
) -> ExtractReport:
    """Write a peft LoRA adapter in `out_dir` that turns `base_dir`'s weights into (about) `tuned_dir`'s."""
    import torch
    from safetensors.torch import save_file

    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    base, tuned = _weights(Path(base_dir)), _weights(Path(tuned_dir))
    if set(base) != set(tuned):
        missing = sorted(set(base) ^ set(tuned))[:3]
        raise StudentExportError(
            f"{tuned_dir} and {base_dir} hold different tensors (e.g. {', '.join(missing)}): the fine-tune was not"
            " trained from this base; give the base model the full fine-tune started from."
        )
    wanted = tuple(targets)
    factors: dict[str, Any] = {}
    modules: list[str] = []
    total = linear = kept = 0.0
    left_out: dict[str, float] = {}
    out_dtype = getattr(torch, dtype)
    for name in sorted(tuned):
        before, after = base[name], tuned[name]
        if before.shape != after.shape:
            raise StudentExportError(f"{name}: shape {tuple(after.shape)} in {tuned_dir}, {tuple(before.shape)} in"
                                     f" {base_dir}: not a fine-tune of this base")  # fmt: skip
        delta = after.float() - before.float()
        energy = float(delta.pow(2).sum())
        total += energy
        module = name.removesuffix(".weight")
        kind = module.rsplit(".", 1)[-1]  # q_proj, input_layernorm, embed_tokens, bias, ...
        if delta.dim() != 2 or kind not in wanted:
            if energy > 0:
                left_out[kind] = left_out.get(kind, 0.0) + energy
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, s.numel())
        root = s[:r].sqrt()  # split S evenly so neither factor overflows fp16
        lora_b, lora_a = delta.new_zeros(delta.shape[0], rank), delta.new_zeros(rank, delta.shape[1])
        lora_b[:, :r], lora_a[:r] = u[:, :r] * root, root[:, None] * vh[:r]  # zero rows past a small layer's rank
        factors[f"{ADAPTER_PREFIX}{module}.lora_B.weight"] = lora_b.to(out_dtype).contiguous()
        factors[f"{ADAPTER_PREFIX}{module}.lora_A.weight"] = lora_a.to(out_dtype).contiguous()
        linear += energy
        kept += float(s[:r].pow(2).sum())
        modules.append(module)
    if not modules:
        raise StudentExportError(f"no linear layer named {', '.join(wanted)} in {tuned_dir}: nothing to extract")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(factors, str(out_dir / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": rank, "lora_dropout": 0.0,
              "target_modules": sorted({m.rsplit(".", 1)[-1] for m in modules}), "bias": "none",
              "base_model_name_or_path": str(base_dir), "inference_mode": True, "fan_in_fan_out": False,
              "init_lora_weights": True, "modules_to_save": None, "use_rslora": False, "use_dora": False}  # fmt: skip
    with atomic_write(out_dir / "adapter_config.json") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
    whole = total or 1.0
    report = ExtractReport(
        rank=rank,
        modules=len(modules),
        kept=kept / (linear or 1.0),
        linear_share=linear / whole,
        left_out={k: v / whole for k, v in left_out.items()},
        adapter_bytes=(out_dir / "adapter_model.safetensors").stat().st_size,
    )
    with atomic_write(out_dir / "extract.json") as handle:
        json.dump({**asdict(report), "base": str(base_dir), "tuned": str(tuned_dir)}, handle, indent=2)
    return report


def _weights(directory: Path) -> Mapping[str, Any]:
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise StudentExportError(f"{directory} has no *.safetensors weights: give a saved HF model dir")
    weights: dict[str, Any] = {}
    for file in files:
        weights.update(load_file(str(file)))
    return weights
