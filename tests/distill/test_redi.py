"""REDI's stage-2 loss on a tiny random llama with SmolLM2's real tokenizer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentdistill.distill.encoding import EncodedExample, collate
from agentdistill.distill.redi import redi_loss

POSITIVES = [
    ("What is 6 * 7?", "Action: calculator\nAction Input: 6*7\nFinal Answer: 42"),
    ("Capital of Italy?", "Final Answer: Rome"),
]
# Answers share almost no tokens with the positives: a token in both kinds is pulled up on balance (1.0 > 0.8),
# which is the point of the asymmetric weights (see test_a_trajectory_in_both_kinds_is_pulled_up).
NEGATIVES = [
    ("Spell cat backwards.", "probably atc, or tca; hard to say"),
    ("Which planet is largest?", "obviously our moon is bigger than everything else"),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _encode(tokenizer, question: str, answer: str, example_id: str, label: str) -> EncodedExample:
    prompt = tokenizer.encode(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    reply = tokenizer.encode(f"{answer}<|im_end|>")
    return EncodedExample(example_id, prompt + reply, [-100] * len(prompt) + reply, label)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def positives(tokenizer) -> list[EncodedExample]:
    return [_encode(tokenizer, q, a, f"pos{i}", "positive") for i, (q, a) in enumerate(POSITIVES)]


@pytest.fixture(scope="module")
def negatives(tokenizer) -> list[EncodedExample]:
    return [_encode(tokenizer, q, a, f"neg{i}", "negative") for i, (q, a) in enumerate(NEGATIVES)]


def _model(model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def _mean_ll(model: torch.nn.Module, example: EncodedExample) -> float:
    """Length-normalised log-likelihood of one example, computed without the code under test."""
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=torch.tensor([example.input_ids])).logits[0, :-1], dim=-1)
    targets = torch.tensor(example.labels[1:])
    mask = targets != -100
    return float(logp[mask].gather(-1, targets[mask][:, None]).mean())


def test_loss_is_weighted_length_normalised_log_likelihood(
    tiny_model_dir: Path, tokenizer, positives, negatives
) -> None:
    model = _model(tiny_model_dir)
    batch = collate(positives + negatives, tokenizer.pad_token_id or 0)
    with torch.no_grad():
        loss, metrics = redi_loss(pos_weight=1.0, neg_weight=0.8)(model, batch)
    ll_pos = sum(_mean_ll(model, ex) for ex in positives) / len(positives)
    ll_neg = sum(_mean_ll(model, ex) for ex in negatives) / len(negatives)
    assert metrics["ll_pos"] == pytest.approx(ll_pos, rel=1e-5)
    assert metrics["ll_neg"] == pytest.approx(ll_neg, rel=1e-5)
    assert metrics["margin"] == pytest.approx(ll_pos - ll_neg, abs=1e-5)
    assert float(loss) == pytest.approx(-ll_pos + 0.8 * ll_neg, rel=1e-5)


def test_one_step_raises_positives_and_lowers_negatives(tiny_model_dir: Path, tokenizer, positives, negatives) -> None:
    model = _model(tiny_model_dir)
    before = {ex.example_id: _mean_ll(model, ex) for ex in positives + negatives}
    loss, _ = redi_loss()(model, collate(positives + negatives, tokenizer.pad_token_id or 0))
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    after = {ex.example_id: _mean_ll(model, ex) for ex in positives + negatives}
    for ex in positives:
        assert after[ex.example_id] > before[ex.example_id], ex.example_id
    for ex in negatives:
        assert after[ex.example_id] < before[ex.example_id], ex.example_id


def test_a_trajectory_in_both_kinds_is_pulled_up(tiny_model_dir: Path, tokenizer, positives) -> None:
    model = _model(tiny_model_dir)
    same_as_negative = EncodedExample("twin", positives[0].input_ids, positives[0].labels, "negative")
    before = _mean_ll(model, positives[0])
    loss, metrics = redi_loss()(model, collate([positives[0], same_as_negative], tokenizer.pad_token_id or 0))
    assert metrics["margin"] == 0.0 and float(loss) == pytest.approx(-0.2 * before, rel=1e-5)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert _mean_ll(model, positives[0]) > before


def test_batches_with_a_single_kind(tiny_model_dir: Path, tokenizer, positives, negatives) -> None:
    model = _model(tiny_model_dir)
    pad = tokenizer.pad_token_id or 0
    with torch.no_grad():
        pos_loss, pos_metrics = redi_loss()(model, collate(positives, pad))
        neg_loss, neg_metrics = redi_loss(neg_weight=0.8)(model, collate(negatives, pad))
    # log-likelihoods are negative: pulling positives up is a positive loss, pushing negatives down a negative one
    assert float(pos_loss) > 0 and set(pos_metrics) == {"ll_pos"}
    assert float(pos_loss) == pytest.approx(-pos_metrics["ll_pos"], rel=1e-6)
    assert float(neg_loss) < 0 and set(neg_metrics) == {"ll_neg"}
    assert float(neg_loss) == pytest.approx(0.8 * neg_metrics["ll_neg"], rel=1e-6)

    before = [_mean_ll(model, ex) for ex in negatives]
    loss, _ = redi_loss()(model, collate(negatives, pad))
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert all(_mean_ll(model, ex) < ll for ex, ll in zip(negatives, before, strict=True))


def test_sequences_without_labelled_tokens_are_ignored(tiny_model_dir: Path, tokenizer, positives) -> None:
    model = _model(tiny_model_dir)
    empty = EncodedExample("empty", positives[0].input_ids, [-100] * len(positives[0].input_ids), "negative")
    pad = tokenizer.pad_token_id or 0
    with torch.no_grad():
        with_empty = redi_loss()(model, collate([positives[0], empty], pad))
        alone = redi_loss()(model, collate([positives[0]], pad))
    assert float(with_empty[0]) == pytest.approx(float(alone[0]), rel=1e-5)
    assert set(with_empty[1]) == {"ll_pos"}
    nothing, metrics = redi_loss()(model, collate([empty], pad))
    nothing.backward()  # still a graph, so a DDP backward runs on every process
    assert float(nothing) == 0.0 and metrics == {}


def test_weights_are_validated() -> None:
    from agentdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="neg_weight"):
        redi_loss(neg_weight=-0.8)


def test_two_stage_redi_with_the_trainer(tiny_model_dir: Path, positives, negatives, tmp_path: Path) -> None:
    """Stage 1: SFT on the positives. Stage 2: continue from that adapter with redi_loss over both kinds."""
    import json

    from agentdistill.distill.train_config import TrainConfig
    from agentdistill.distill.trainer import train

    config = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, lr=1e-2, max_steps=2, batch_size=4,
                         warmup_ratio=0.0, save_every=0, eval_every=2, device="cpu")  # fmt: skip
    sft = train(tiny_model_dir, positives, [], config, tmp_path / "sft", progress=False)
    assert sft.adapter_dir is not None
    redi = train(tiny_model_dir, positives + negatives, [], dataclasses.replace(config, max_steps=3),
                 tmp_path / "redi", loss_fn=redi_loss(), init_adapter=sft.adapter_dir, progress=False)  # fmt: skip
    rows = [json.loads(line) for line in redi.metrics_path.read_text().splitlines()]
    assert redi.steps == 3 and all({"ll_pos", "ll_neg", "margin"} <= set(r) for r in rows)
    assert rows[-1]["margin"] > rows[0]["margin"]  # full batch: the same sequences at every step
    assert rows[0]["ll_pos"] > rows[0]["ll_neg"]  # stage 1 already lifted the positives above the negatives
