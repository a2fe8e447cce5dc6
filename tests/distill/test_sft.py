"""SFT: the loss is cross-entropy on exactly the labelled tokens, and a few steps on real chat data teach the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.data import encode_examples
from agentdistill.distill.encoding import collate
from agentdistill.distill.sft import sft_loss, token_ce_sum
from agentdistill.distill.train_config import TrainConfig
from agentdistill.distill.trainer import train_sft
from agentdistill.models.transformers_backend import resolve_model_dir


def chat(i: int, answer: str) -> ChatExample:
    messages = [
        {"role": "system", "content": "Answer with Thought/Action lines."},
        {"role": "user", "content": f"Question {i}: what is {i} + {i}?"},
        {"role": "assistant", "content": f"Thought: add them.\nAction: calculator\nAction Input: {i} + {i}"},
        {"role": "user", "content": f"Observation: {2 * i}"},
        {"role": "assistant", "content": answer},
    ]
    return ChatExample(id=f"q{i}", run_id=f"r{i}", question=f"q{i}", messages=messages, train_turns=(2, 4))


@pytest.fixture(scope="module")
def encoded(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows, cut = encode_examples(tokenizer, [chat(3, "Final Answer: 6"), chat(7, "Final Answer: 14")], max_len=512)
    assert cut == 0 and len(rows) == 2
    return rows, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def test_sft_loss_is_hf_cross_entropy_over_the_labelled_tokens(tiny_model_dir: Path, encoded) -> None:
    from transformers import AutoModelForCausalLM

    rows, pad_id = encoded
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = collate(rows, pad_id)
    loss, extra = sft_loss(model, batch)
    reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    labelled = sum(sum(1 for t in row.labels[1:] if t != -100) for row in rows)  # the first token is never predicted
    assert extra["label_tokens"] == labelled and labelled > 10
    # Masked tokens really are ignored: changing a prompt-side label changes nothing.
    total, count = token_ce_sum(model, batch)
    assert count == labelled and total.item() == pytest.approx(loss.item() * labelled, rel=1e-5)


def test_a_batch_with_nothing_to_learn_has_zero_loss_and_a_graph(tiny_model_dir: Path, encoded) -> None:
    from transformers import AutoModelForCausalLM

    rows, pad_id = encoded
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = collate(rows, pad_id)
    batch["labels"][:] = -100
    loss, extra = sft_loss(model, batch)
    loss.backward()  # DDP needs every process to run backward, even on an empty batch
    assert loss.item() == 0.0 and extra["label_tokens"] == 0


def test_sft_steps_change_the_adapter_and_lower_the_loss_on_a_repeated_batch(
    tiny_model_dir: Path, encoded, tmp_path: Path
) -> None:
    rows, _ = encoded
    config = TrainConfig(lr=1e-2, batch_size=2, max_steps=10, warmup_ratio=0.0, lora_dropout=0.0, save_every=0,
                         eval_every=10)  # fmt: skip
    # Two examples and batch 2: every step sees the very same batch, so the loss must fall.
    result = train_sft(tiny_model_dir, rows, rows, config, tmp_path / "sft", progress=False)
    curve = [json.loads(line)["loss"] for line in result.metrics_path.read_text().splitlines()]
    # The tiny model's LM head is frozen, random and tied to 32-dim embeddings: logits can move by well under
    # 1 nat from ln(49152) = 10.8, so a fall of 0.1 is a clear signal here (about 0.25 in practice).
    assert len(curve) == 10 and curve[-1] < curve[0] - 0.1 and curve[-1] < min(curve[:3]), curve
    assert result.val_loss is not None and result.val_loss < curve[0]
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and all(w.abs().sum() > 0 for w in lora_b)  # peft starts B at zero: the steps moved it
    config_json = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert (config_json["r"], config_json["lora_alpha"]) == (64, 128)
    # The adapter names its base dir, so `hf:`/`student:` specs can load it without being told the base.
    assert resolve_model_dir(result.adapter_dir, None) == (tiny_model_dir.resolve(), result.adapter_dir.resolve())


def test_one_step_moves_only_the_adapter(tiny_model_dir: Path, encoded, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    rows, _ = encoded
    config = TrainConfig(lr=1e-2, batch_size=2, max_steps=1, warmup_ratio=0.0, save_every=0)
    result = train_sft(tiny_model_dir, rows, [], config, tmp_path / "one", progress=False)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = PeftModel.from_pretrained(base, result.adapter_dir)
    moved = {n for n, p in tuned.named_parameters() if "lora_B" in n and p.abs().sum() > 0}
    assert len(moved) == 14  # 7 linear layers x 2 blocks: all-linear, as Agent Distillation trains
    merged = tuned.merge_and_unload().state_dict()
    assert not torch.equal(
        merged["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(merged["model.embed_tokens.weight"], before["model.embed_tokens.weight"])  # not a target
