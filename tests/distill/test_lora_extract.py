"""A full fine-tune compressed to a LoRA adapter: exact at full rank, the best rank-r fit below, loadable by peft."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentdistill.distill.lora_extract import extract_lora
from agentdistill.distill.student import StudentExportError


@pytest.fixture
def tuned_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny llama after a fake full fine-tune: every weight moved, the embeddings and norms too."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    out = tmp_path / "tuned"
    model.save_pretrained(out)
    return out


def _merged(adapter: Path, base: Path) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, adapter).merge_and_unload().state_dict()


def _state(directory: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).state_dict()


def test_full_rank_gives_back_the_tuned_linear_layers(tiny_model_dir: Path, tuned_dir: Path, tmp_path: Path) -> None:
    import torch

    report = extract_lora(tiny_model_dir, tuned_dir, tmp_path / "adapter", rank=64, dtype="float32")
    assert report.modules == 2 * 7 and report.kept == pytest.approx(1.0, abs=1e-6)
    assert set(report.left_out) == {"embed_tokens", "input_layernorm", "post_attention_layernorm", "norm"}
    assert 0 < report.linear_share < 1 and "not representable: embed_tokens" in report.describe()
    merged, tuned, base = _merged(tmp_path / "adapter", tiny_model_dir), _state(tuned_dir), _state(tiny_model_dir)
    q = "model.layers.1.self_attn.q_proj.weight"
    assert torch.allclose(merged[q], tuned[q], atol=1e-4) and not torch.allclose(base[q], tuned[q], atol=1e-2)
    # what a LoRA cannot hold stays at the base: said in the report, not silently claimed
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 64 and "down_proj" in config["target_modules"]


def test_low_rank_keeps_the_top_singular_directions(tiny_model_dir: Path, tuned_dir: Path, tmp_path: Path) -> None:
    import torch

    report = extract_lora(tiny_model_dir, tuned_dir, tmp_path / "adapter", rank=4, dtype="float32")
    merged, tuned, base = _merged(tmp_path / "adapter", tiny_model_dir), _state(tuned_dir), _state(tiny_model_dir)
    name = "model.layers.0.mlp.down_proj.weight"
    delta = tuned[name] - base[name]
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    best = (u[:, :4] * s[:4]) @ vh[:4]  # Eckart-Young: the best rank-4 fit
    assert torch.allclose(merged[name] - base[name], best, atol=1e-4)
    assert 0.1 < report.kept < 0.9  # random changes are far from rank 4


def test_a_model_of_another_base_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_hidden_layers = 1
    other = tmp_path / "other"
    AutoModelForCausalLM.from_config(config).save_pretrained(other)
    with pytest.raises(StudentExportError, match="hold different tensors.*not trained from this base"):
        extract_lora(tiny_model_dir, other, tmp_path / "adapter", rank=4)
    empty = tmp_path / "empty"
    shutil.copytree(other, empty, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(StudentExportError, match="no \\*.safetensors weights"):
        extract_lora(tiny_model_dir, empty, tmp_path / "adapter", rank=4)
