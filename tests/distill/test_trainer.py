"""The shared training loop on a tiny random llama: resume, corrupt checkpoints, full fine-tune, accumulation, OOM."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from agentdistill.distill.checkpoints import CheckpointMismatch, CorruptCheckpoint, step_dirs
from agentdistill.distill.encoding import EncodedExample
from agentdistill.distill.sft import sft_loss
from agentdistill.distill.train_config import TrainConfig
from agentdistill.distill.train_step import TrainingOOM
from agentdistill.distill.trainer import NoTrainingData, train
from agentdistill.errors import ConfigError


def examples(count: int, length: int = 20, *, seed: int = 0) -> list[EncodedExample]:
    """Equal-length examples whose second half is labelled: every batch has the same number of loss tokens."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        ids = [rng.randrange(100, 3000) for _ in range(length)]
        out.append(EncodedExample(f"ex{seed}-{i}", ids, [-100] * (length // 2) + ids[length // 2 :]))
    return out


def fast(**overrides: Any) -> TrainConfig:
    base = {
        "lr": 1e-2,
        "batch_size": 2,
        "grad_accum": 1,
        "max_steps": 6,
        "warmup_ratio": 0.0,
        "eval_every": 3,
        "save_every": 2,
    }
    return TrainConfig(**(base | overrides))


def losses(metrics: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in map(json.loads, metrics.read_text().splitlines())}


class Killed(Exception):
    """Stands in for SIGKILL: raised from inside the loop, after some steps were checkpointed."""


def dies_after(calls: int):
    seen = 0

    def loss_fn(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        nonlocal seen
        seen += 1
        if seen > calls:
            raise Killed
        return sft_loss(model, batch)

    return loss_fn


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("whole")
    # Dropout stays on (0.05): resume must restore the RNG too, or the masks after step 4 would differ.
    return train(tiny_model_dir, examples(8), examples(3, seed=1), fast(), out, progress=False)


@pytest.fixture(scope="module")
def killed_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("killed")
    with pytest.raises(Killed):
        train(tiny_model_dir, examples(8), examples(3, seed=1), fast(), out, loss_fn=dies_after(5), progress=False)
    return out


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="'batch_size'"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="'schedule'"):
        TrainConfig(schedule="step")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'warmup_ratio'"):
        TrainConfig(warmup_ratio=1.0)


def test_run_writes_adapter_metrics_plot_and_eval(uninterrupted) -> None:
    result = uninterrupted
    assert result.steps == 6 and result.model_dir is None
    assert (result.adapter_dir / "adapter_config.json").is_file()
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (result.adapter_dir / "tokenizer_config.json").is_file()  # the student dir is self-contained
    rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "tokens_per_s", "peak_mem_mb", "elapsed_s"} <= set(rows[0])
    assert [row["step"] for row in rows if "val_loss" in row] == [3, 6]  # eval_every=3, and the end
    assert result.val_loss == rows[-1]["val_loss"] and result.val_loss > 0
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(step_dirs(result.out_dir / "checkpoints")) == 2  # steps 2 and 4: only the last two are kept


def test_killed_run_resumes_to_the_uninterrupted_state(
    tiny_model_dir: Path, killed_run: Path, uninterrupted, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(killed_run, out)
    assert [p.name for p in step_dirs(out / "checkpoints")] == ["step-0000002", "step-0000004"]
    assert max(losses(out / "metrics.jsonl")) == 5  # step 5 ran after the last checkpoint; it will be replayed
    result = train(tiny_model_dir, examples(8), examples(3, seed=1), fast(), out, progress=False)
    assert result.resumed_from == 4 and result.steps == 6
    # Same loss at every step (the metrics hold each step once), same final weights, same val loss.
    whole, resumed = losses(uninterrupted.metrics_path), losses(result.metrics_path)
    assert list(resumed) == [1, 2, 3, 4, 5, 6]
    for step in whole:
        assert resumed[step] == pytest.approx(whole[step], abs=1e-5)
    a = load_file(uninterrupted.adapter_dir / "adapter_model.safetensors")
    b = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert result.val_loss == pytest.approx(uninterrupted.val_loss, abs=1e-5)


@pytest.mark.parametrize("victim", ["weights.safetensors", "optimizer.pt", "rng-0.pt"])
def test_corrupt_checkpoint_is_refused_naming_the_file(
    tiny_model_dir: Path, killed_run: Path, tmp_path: Path, victim: str
) -> None:
    out = tmp_path / "corrupt"
    shutil.copytree(killed_run, out)
    path = out / "checkpoints" / "step-0000004" / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint) as caught:
        train(tiny_model_dir, examples(8), examples(3, seed=1), fast(), out, progress=False)
    message = str(caught.value)
    assert str(path) in message and "step-0000002" in message  # names the bad file and the fallback


def test_resume_with_other_settings_is_refused(tiny_model_dir: Path, killed_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "other"
    shutil.copytree(killed_run, out)
    with pytest.raises(CheckpointMismatch, match="lr"):
        train(tiny_model_dir, examples(8), examples(3, seed=1), fast(lr=5e-3), out, progress=False)


def test_finished_run_is_not_trained_again(tiny_model_dir: Path, uninterrupted, tmp_path: Path) -> None:
    out = tmp_path / "done"
    shutil.copytree(uninterrupted.out_dir, out)
    before = (out / "metrics.jsonl").read_text()
    again = train(tiny_model_dir, examples(8), examples(3, seed=1), fast(), out, progress=False)
    assert again.steps == 6 and again.val_loss == uninterrupted.val_loss
    assert again.adapter_dir == out / "final" and again.metrics_path == out / "metrics.jsonl"
    assert (out / "metrics.jsonl").read_text() == before


def test_full_fine_tune_changes_every_weight_and_saves_an_hf_dir(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    config = fast(lora=False, lr=1e-3, max_steps=3, save_every=2)
    result = train(tiny_model_dir, examples(4), [], config, tmp_path / "full", progress=False)
    assert result.adapter_dir is None and result.val_loss is None
    assert (result.model_dir / "config.json").is_file() and (result.model_dir / "tokenizer.json").is_file()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    tuned = AutoModelForCausalLM.from_pretrained(result.model_dir).state_dict()
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert "model.layers.0.mlp.down_proj.weight" in changed and "model.embed_tokens.weight" in changed
    assert json.loads((result.model_dir / "config.json").read_text())["use_cache"] is True


def test_grad_accumulation_matches_a_bigger_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = examples(8)
    config = fast(batch_size=4, lora_dropout=0.0, save_every=0)
    big = train(tiny_model_dir, data, [], config, tmp_path / "b4", progress=False)
    small = fast(batch_size=2, grad_accum=2, lora_dropout=0.0, save_every=0)
    accum = train(tiny_model_dir, data, [], small, tmp_path / "b2x2", progress=False)
    a, b = losses(big.metrics_path), losses(accum.metrics_path)
    assert a.keys() == b.keys() and all(b[s] == pytest.approx(a[s], abs=1e-5) for s in a)
    assert a[6] < a[1]  # it learned something, so the comparison is not between two idle runs
    wa = load_file(big.adapter_dir / "adapter_model.safetensors")
    wb = load_file(accum.adapter_dir / "adapter_model.safetensors")
    # Looser than the losses: Adam divides by sqrt(v), so where a gradient is near eps the round-off of a
    # different summation order grows into a visible share of lr. Unrelated runs differ by ~0.1 here.
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-3


def test_grad_checkpointing_gives_the_same_losses(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = fast(lora_dropout=0.0, max_steps=3, save_every=0)
    plain = train(tiny_model_dir, examples(4), [], config, tmp_path / "plain", progress=False)
    config = fast(lora_dropout=0.0, max_steps=3, save_every=0, grad_checkpointing=True)
    ckpt = train(tiny_model_dir, examples(4), [], config, tmp_path / "ckpt", progress=False)
    a, b = losses(plain.metrics_path), losses(ckpt.metrics_path)
    assert all(b[s] == pytest.approx(a[s], abs=1e-5) for s in a)


def test_loss_fn_sees_progress_rising_over_the_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    seen: list[float] = []

    def recording(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        seen.append(batch["progress"])
        return sft_loss(model, batch)

    train(tiny_model_dir, examples(4), [], fast(max_steps=4, grad_accum=2, save_every=0), tmp_path / "p",
          loss_fn=recording, progress=False)  # fmt: skip
    assert seen == [0.0, 0.0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75]  # one value per optimizer step, both micro-steps


def test_out_of_memory_becomes_advice(tiny_model_dir: Path, tmp_path: Path) -> None:
    def exhausted(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: can't allocate memory")

    with pytest.raises(TrainingOOM) as caught:
        train(tiny_model_dir, examples(4), [], fast(lora=False), tmp_path / "oom", loss_fn=exhausted, progress=False)
    message = str(caught.value)
    assert "--batch-size" in message and "--max-len" in message and "--lora" in message
    assert "--grad-checkpointing" in message


def test_other_runtime_errors_pass_through(tiny_model_dir: Path, tmp_path: Path) -> None:
    def broken(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raise RuntimeError("shape mismatch in my loss")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        train(tiny_model_dir, examples(4), [], fast(), tmp_path / "err", loss_fn=broken, progress=False)


def test_empty_training_set_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NoTrainingData, match="empty"):
        train(tiny_model_dir, [], examples(2), fast(), tmp_path / "none", progress=False)
