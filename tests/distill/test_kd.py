"""KD losses and the teacher cache, on tiny random llamas that share SmolLM2's real tokenizer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from agentdistill.distill.encoding import EncodedExample, collate
from agentdistill.distill.kd import TeacherCache, kd_loss
from agentdistill.distill.teacher_topk import TeacherCacheError
from agentdistill.distill.tokenizer_fingerprint import KDTokenizerMismatch, check_same_tokenizer

QA = [
    ("What is 2 + 3?", "2 + 3 = 5, so the answer is 5."),
    ("Name the capital of France.", "Paris."),
    ("Compute 12 * 12.", "Thought: multiply.\nAction: calculator\nAction Input: 12*12"),
    ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet around 1600."),
    ("Is 7 prime?", "Yes: 7 has no divisors other than 1 and itself."),
]


def _save_tiny_llama(tokenizer, out: Path, *, seed: int, init_std: float = 0.5) -> Path:
    """A random llama whose next-token distributions are peaked (the default init gives near-uniform ones)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
        initializer_range=init_std,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def teacher_dir(tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another random tiny llama (seed 1) with the student's exact tokenizer."""
    return _save_tiny_llama(tokenizer, tmp_path_factory.mktemp("teacher"), seed=1)


@pytest.fixture(scope="module")
def examples(tokenizer) -> list[EncodedExample]:
    out = []
    for i, (question, answer) in enumerate(QA):
        prompt = tokenizer.encode(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
        reply = tokenizer.encode(f"{answer}<|im_end|>")
        out.append(EncodedExample(f"ex{i}", prompt + reply, [-100] * len(prompt) + reply))
    return out


@pytest.fixture(scope="module")
def teacher_cache(teacher_dir: Path, examples, tmp_path_factory: pytest.TempPathFactory) -> TeacherCache:
    return TeacherCache.build(teacher_dir, examples, tmp_path_factory.mktemp("cache"), k=8, shard_size=2)


@pytest.fixture(scope="module")
def self_cache(tiny_model_dir: Path, examples, tmp_path_factory: pytest.TempPathFactory) -> TeacherCache:
    """The student as its own teacher: every divergence must vanish."""
    return TeacherCache.build(tiny_model_dir, examples, tmp_path_factory.mktemp("self-cache"), k=8, batch_size=3)


def _student(model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def _batch(tokenizer, examples, progress: float = 0.5) -> dict:
    batch = collate(examples, tokenizer.pad_token_id or 0)
    batch["progress"] = progress
    return batch


def test_cache_rows_are_the_teachers_top_k_at_the_shifted_positions(teacher_cache, teacher_dir, examples) -> None:
    teacher = _student(teacher_dir)
    ex = examples[2]
    with torch.no_grad():
        logp = F.log_softmax(teacher(input_ids=torch.tensor([ex.input_ids])).logits[0], dim=-1)
    positions = [j - 1 for j in range(1, len(ex.labels)) if ex.labels[j] != -100]
    rows = teacher_cache.targets([ex.example_id])
    assert rows.ids.shape == (len(positions), 8)
    expected = logp[positions].topk(8, dim=-1)
    assert torch.equal(rows.ids, expected.indices)
    torch.testing.assert_close(rows.logp, expected.values, atol=1e-5, rtol=1e-5)
    # top-k mass plus the rest bucket is the whole distribution
    total = torch.logsumexp(torch.cat([rows.logp, rows.rest[:, None]], dim=-1), dim=-1)
    torch.testing.assert_close(total, torch.zeros_like(total), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("kind", "temperature"), [("forward", 1.0), ("reverse", 1.0), ("taid", 1.0), ("forward", 2.0)])
def test_kl_is_zero_against_itself_and_positive_against_another_teacher(
    kind: str, temperature: float, tiny_model_dir: Path, tokenizer, examples, self_cache, teacher_cache
) -> None:
    student = _student(tiny_model_dir)
    batch = _batch(tokenizer, examples)  # one batch of 5 vs caches built in other batchings: padding must not matter
    with torch.no_grad():
        same, same_metrics = kd_loss(self_cache, kind, temperature=temperature)(student, batch)
        other, other_metrics = kd_loss(teacher_cache, kind, temperature=temperature)(student, batch)
    assert 0.0 <= float(same) < 1e-5 and 0.0 <= same_metrics["kl"] < 1e-5
    assert float(other) > 1e-3 and other_metrics["kl"] == pytest.approx(float(other))
    assert other_metrics["ce"] > 0 and math.isfinite(other_metrics["ce"])


def _buckets(student: torch.nn.Module, batch: dict, cache: TeacherCache) -> tuple[torch.Tensor, torch.Tensor]:
    """(student, teacher) log-probs over top-k + rest, computed here independently of kd.py's code path."""
    logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    logp = F.log_softmax(logits[batch["labels"][:, 1:] != -100], dim=-1)
    rows = cache.targets(batch["example_ids"])
    top = logp.gather(-1, rows.ids)
    rest = torch.log1p(-top.exp().sum(-1, keepdim=True).clamp_max(1 - 1e-7))
    return torch.cat([top, rest], -1), torch.cat([rows.logp, rows.rest[:, None]], -1)


@pytest.mark.parametrize("kind", ["forward", "reverse", "taid"])
def test_one_sgd_step_reduces_the_kl(kind: str, tiny_model_dir: Path, tokenizer, examples, teacher_cache) -> None:
    student = _student(tiny_model_dir)
    loss_fn, forward_kl = kd_loss(teacher_cache, kind), kd_loss(teacher_cache, "forward")
    batch = _batch(tokenizer, examples[:4], progress=0.5)
    with torch.no_grad():
        fwd_before = float(forward_kl(student, batch)[0])
        s_before, teacher = _buckets(student, batch, teacher_cache)
        # TAID's target at this step (t = 0.2 + 0.8 * 0.5): a log-space mix of the student and the teacher
        target = F.log_softmax(0.4 * s_before + 0.6 * teacher, dim=-1)
    before, metrics = loss_fn(student, batch)
    if kind == "taid":
        assert metrics["t"] == pytest.approx(0.6)
        expected = (target.exp() * (target - s_before)).sum(-1).mean()
        assert float(before) == pytest.approx(float(expected), rel=1e-3)
    before.backward()
    torch.optim.SGD(student.parameters(), lr=1.0).step()
    with torch.no_grad():
        after = float(loss_fn(student, batch)[0])
        fwd_after = float(forward_kl(student, batch)[0])
        s_after, _ = _buckets(student, batch, teacher_cache)
    if kind == "taid":  # the target moves with the student, so compare against the target of the step taken
        kl = lambda s: float((target.exp() * (target - s)).sum(-1).mean())  # noqa: E731
        assert kl(s_after) < kl(s_before)
    else:
        assert after < float(before)
    assert fwd_after < fwd_before  # every kind moves the student towards the teacher


def test_taid_target_moves_from_student_to_teacher_with_progress(
    tiny_model_dir: Path, tokenizer, examples, teacher_cache
) -> None:
    student = _student(tiny_model_dir)
    taid = kd_loss(teacher_cache, "taid", taid_start=0.2, taid_end=1.0)
    losses, ts = [], []
    for progress in (0.0, 0.5, 1.0):
        with torch.no_grad():
            loss, metrics = taid(student, _batch(tokenizer, examples, progress))
        losses.append(float(loss))
        ts.append(metrics["t"])
    assert ts == pytest.approx([0.2, 0.6, 1.0])
    assert losses[0] < losses[1] < losses[2]  # the target starts near the student and ends at the teacher
    with torch.no_grad():
        forward = float(kd_loss(teacher_cache, "forward")(student, _batch(tokenizer, examples))[0])
    assert losses[2] == pytest.approx(forward, rel=1e-4)
    # t = 0: the target is the student itself, so no loss and no gradient
    loss, _ = kd_loss(teacher_cache, "taid", taid_start=0.0)(student, _batch(tokenizer, examples, 0.0))
    loss.backward()
    assert abs(float(loss)) < 1e-6
    assert max(float(p.grad.abs().max()) for p in student.parameters() if p.grad is not None) < 1e-6


def test_ce_weight_adds_the_label_cross_entropy(tiny_model_dir: Path, tokenizer, examples, teacher_cache) -> None:
    student = _student(tiny_model_dir)
    batch = _batch(tokenizer, examples)
    with torch.no_grad():
        loss, metrics = kd_loss(teacher_cache, "reverse", ce_weight=0.5)(student, batch)
        logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1))
    assert metrics["ce"] == pytest.approx(float(ce), rel=1e-5)
    assert float(loss) == pytest.approx(metrics["kl"] + 0.5 * metrics["ce"], rel=1e-5)


def test_build_resumes_and_recomputes_only_a_missing_shard(teacher_dir: Path, examples, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    first = TeacherCache.build(teacher_dir, examples, out, k=4, shard_size=2)
    assert first.computed_shards == ("shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors")
    stamps = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.safetensors")}

    again = TeacherCache.build(teacher_dir, examples, out, k=4, shard_size=2)
    assert again.computed_shards == ()
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.safetensors")} == stamps

    (out / "shard-00001.safetensors").unlink()  # as if the build was killed before writing it
    with pytest.raises(TeacherCacheError, match="incomplete"):
        TeacherCache.open(out)
    resumed = TeacherCache.build(teacher_dir, examples, out, k=4, shard_size=2)
    assert resumed.computed_shards == ("shard-00001.safetensors",)
    for name in ("shard-00000.safetensors", "shard-00002.safetensors"):
        assert (out / name).stat().st_mtime_ns == stamps[name][0]
    assert (out / "shard-00001.safetensors").read_bytes() == stamps["shard-00001.safetensors"][1]

    opened = TeacherCache.open(out)
    assert len(opened) == len(examples) and "ex3" in opened and opened.k == 4
    # Only JSON and safetensors on disk: nothing a loader would unpickle.
    assert sorted(p.suffix for p in out.iterdir()) == [".json"] + [".safetensors"] * 3
    assert not any(p.read_bytes().startswith(b"\x80") for p in out.iterdir())

    with pytest.raises(TeacherCacheError, match="different k"):
        TeacherCache.build(teacher_dir, examples, out, k=5, shard_size=2)


def test_tokenizer_mismatch_is_refused_naming_both_dirs(
    tokenizer, tiny_model_dir: Path, teacher_dir: Path, examples, tmp_path: Path
) -> None:
    other_tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    other_tok.add_tokens(["<tool_call_x>", "<tool_result_x>"])
    other = _save_tiny_llama(other_tok, tmp_path / "other-teacher", seed=2)

    check_same_tokenizer(teacher_dir, tiny_model_dir)  # same tokenizer: no error
    with pytest.raises(KDTokenizerMismatch) as err:
        TeacherCache.build(other, examples[:1], tmp_path / "cache", k=4, student_dir=tiny_model_dir)
    message = str(err.value)
    assert str(other) in message and str(tiny_model_dir) in message and "vocab sizes" in message
    assert not (tmp_path / "cache").exists()  # refused before anything was written

    cache = TeacherCache.build(other, examples[:1], tmp_path / "cache", k=4)  # no student given: caught later
    with pytest.raises(KDTokenizerMismatch, match="vocab sizes"):
        cache.check_student(tiny_model_dir)


def test_batch_must_match_the_cached_encoding(tiny_model_dir: Path, tokenizer, examples, teacher_cache) -> None:
    student = _student(tiny_model_dir)
    ids, labels = examples[0].input_ids, list(examples[0].labels)
    labels[5] = ids[5]  # one more trained token than when the cache was built: rows would pair up wrongly
    changed = EncodedExample("ex0", ids, labels)
    with pytest.raises(TeacherCacheError, match="encoded differently"):
        kd_loss(teacher_cache)(student, _batch(tokenizer, [changed]))
    unknown = EncodedExample("nope", examples[0].input_ids, examples[0].labels)
    with pytest.raises(TeacherCacheError, match="not in the teacher cache"):
        kd_loss(teacher_cache)(student, _batch(tokenizer, [unknown]))


def test_train_with_taid_lowers_the_kl_and_ramps_t(
    tiny_model_dir: Path, tokenizer, examples, teacher_cache, tmp_path: Path
) -> None:
    import json

    from agentdistill.distill.train_config import TrainConfig
    from agentdistill.distill.trainer import train

    # Full batch, so every step sees the same examples and the KL is comparable from step to step.
    config = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, lr=1e-2, max_steps=4, batch_size=len(examples),
                         warmup_ratio=0.0, schedule="linear", save_every=0, eval_every=4, device="cpu")  # fmt: skip
    loss_fn = kd_loss(teacher_cache, "taid", taid_start=0.2, taid_end=1.0)
    result = train(tiny_model_dir, examples, examples[:2], config, tmp_path / "run", loss_fn=loss_fn, progress=False)
    rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    assert result.steps == 4 and [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["t"] for r in rows] == pytest.approx([0.2, 0.4, 0.6, 0.8])  # progress = step / total before the step
    # The loss is against a target that moves towards the teacher; the divergence from the teacher itself must fall.
    from peft import PeftModel

    student = _student(tiny_model_dir)
    trained = PeftModel.from_pretrained(_student(tiny_model_dir), result.adapter_dir)
    batch = _batch(tokenizer, examples)
    with torch.no_grad():
        before = float(kd_loss(teacher_cache, "forward")(student, batch)[0])
        after = float(kd_loss(teacher_cache, "forward")(trained, batch)[0])
    assert after < before
