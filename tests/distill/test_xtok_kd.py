"""Cross-tokenizer KD: a tiny random Qwen2 (Qwen2.5-Coder's real tokenizer) teaches a tiny random llama (SmolLM2's)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentdistill.commands.distill_train import train as train_command
from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.data import encode_examples, save_examples
from agentdistill.distill.encoding import IGNORE, collate, encode_example
from agentdistill.distill.tokenizer_fingerprint import KDTokenizerMismatch
from agentdistill.distill.xtok_align import (
    VocabProjection,
    align_positions,
    aligned_share,
    anchors_from_offsets,
    example_anchors,
)
from agentdistill.distill.xtok_kd import SameTokenizer, XTeacherCache, teacher_encoding, xkd_loss
from agentdistill.models.packaged import ensure_hf_dir, find_packaged, is_installed

SYSTEM = "You are a CodeAct agent: think, then write one ```python``` cell; call final_answer(x) when done."


def codeact(i: int) -> ChatExample:
    """Two trained assistant turns around a tool observation (the cell's output), as the CodeAct graph records."""
    a, b = 17 + i, 23 + 2 * i
    cell = f"result = {a} * {b}\nprint(result)"
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"What is {a} * {b}?"},
        {"role": "assistant", "content": f"Thought: I will compute the product with Python.\n```python\n{cell}\n```"},
        {"role": "user", "content": f"Observation:\nsecret observation {a * b}"},
        {"role": "assistant", "content": f"Thought: the product is {a * b}.\n```python\nfinal_answer({a * b})\n```"},
    ]
    return ChatExample(id=f"ca{i}", run_id=f"r{i}", question=f"q{i}", messages=messages, train_turns=(2, 4))


@pytest.fixture(scope="module")
def qwen_tokenizer_dir() -> Path:
    """The converted packaged Qwen2.5-Coder-0.5B dir (cached; ~90 s the first time on a machine)."""
    pm = find_packaged("qwen2.5-coder-0.5b")
    ok, why = is_installed(pm)
    if not ok:
        pytest.skip(why)
    raw = os.environ.get("AGENTDISTILL_TEST_CACHE")  # the cache tests/distill/conftest.py converts into
    cache = Path(raw) if raw else Path(os.environ.get("TMPDIR", "/tmp")) / "agentdistill-test-cache"
    return ensure_hf_dir(pm, cache, progress=False)


@pytest.fixture(scope="module")
def tok_s(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tok_t(qwen_tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir)


@pytest.fixture(scope="module")
def tiny_qwen_dir(tok_t, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Qwen2 (hidden 32) with Qwen's tokenizer; a wide init makes its distributions peaked."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    config = Qwen2Config(
        vocab_size=len(tok_t), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, initializer_range=0.5,
        eos_token_id=tok_t.eos_token_id,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("tiny-qwen")
    Qwen2ForCausalLM(config).save_pretrained(out)
    tok_t.save_pretrained(out)
    return out


def test_alignment_of_hand_made_offsets() -> None:
    # Student: header | Th | ought | : | " 1" | 7 | <end>; content "Thought: 17" at 10..21 of its rendering.
    student_offsets = [(0, 10), (10, 12), (12, 17), (17, 18), (18, 20), (20, 21), (21, 31)]
    # Teacher: another template puts the same content at 5..16: header | Thought | : | " " | 1 | 7 | <end>.
    teacher_offsets = [(0, 5), (5, 12), (12, 13), (13, 14), (14, 15), (15, 16), (16, 26)]
    labels = [IGNORE, 1, 2, 3, 4, 5, 6]
    student = anchors_from_offsets(student_offsets, labels, [(2, 10, 21)])
    teacher = anchors_from_offsets(teacher_offsets, labels, [(2, 5, 16)])
    assert student == [(2, 0), (2, 2), (2, 7), (2, 8), (2, 10), (2, 11)]
    mapping = align_positions(student, teacher)
    assert mapping == [0, None, 1, 2, 4, 5]  # "ought" and the teacher's "1" start where the other has no token
    assert aligned_share(mapping) == pytest.approx(5 / 6)
    # A token merged with the header starts before the content: it has no anchor, so it is never aligned.
    assert anchors_from_offsets([(0, 9), (9, 12)], [IGNORE, 7], [(2, 10, 21)]) == [None]


def test_codeact_reply_aligns_well_and_observations_are_never_targets(tok_s, tok_t) -> None:
    example = codeact(0)
    encoded_s, encoded_t = encode_example(tok_s, example), teacher_encoding(tok_t, example)
    student, teacher = example_anchors(tok_s, example, encoded_s), example_anchors(tok_t, example, encoded_t)
    assert aligned_share(align_positions(student, teacher)) > 0.5  # measured: 0.86
    assert {a[0] for a in student + teacher if a is not None} == {2, 4}  # only the trained assistant turns
    for tokenizer, encoded in ((tok_s, encoded_s), (tok_t, encoded_t)):
        full = tokenizer.apply_chat_template(example.messages, tokenize=False)
        start = full.index("Observation:")
        stop = full.index("<|im_end|>", start)
        offsets = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        targets = [offsets[j] for j in range(1, len(encoded.labels)) if encoded.labels[j] != IGNORE]
        assert targets and not [(a, b) for a, b in targets if a < stop and b > start]


def test_projection_maps_text_and_sums_to_one(tok_s, tok_t) -> None:
    projection = VocabProjection(tok_t, tok_s)
    [the_t], [the_s] = tok_t.encode(" the"), tok_s.encode(" the")
    assert projection.student_id(the_t) == the_s
    paren, paren_result = tok_t.encode("(")[0], tok_t.encode("(result")[0]  # the student writes "(" + "result"
    half_byte = tok_t.convert_tokens_to_ids("æ")  # byte 0xE6 alone: a piece of a character, maps nowhere
    fim = tok_t.convert_tokens_to_ids("<|fim_prefix|>")  # a Qwen special the student has no token for
    ids, probs, rest = [the_t, paren, paren_result, half_byte, fim], [0.4, 0.2, 0.1, 0.05, 0.05], 0.2
    got = projection.project(ids, [math.log(p) for p in probs], math.log(rest))
    assert got is not None
    out_ids, out_lp, tail = got
    assert len(out_ids) == len(ids) and out_ids[0] == the_s
    assert math.exp(out_lp[0]) == pytest.approx(0.4) and math.exp(out_lp[1]) == pytest.approx(0.3)  # merged "("
    assert sum(math.exp(x) for x in out_lp) + math.exp(tail) == pytest.approx(1.0)
    assert math.exp(tail) == pytest.approx(0.3)  # the top-k's remainder plus the two unmapped candidates
    assert projection.project([half_byte], [0.0], -math.inf) is None


def test_xkd_loss_is_finite_and_trains_only_on_labels(
    tiny_model_dir: Path, tiny_qwen_dir: Path, tok_s, tok_t, tmp_path: Path
) -> None:
    examples = [codeact(i) for i in range(3)]
    train_set, _ = encode_examples(tok_s, examples, 2048)
    loss_fn = xkd_loss(tiny_qwen_dir, tiny_model_dir, examples, train_set, tmp_path / "cache", k=8, progress=False)
    assert 0.5 < loss_fn.aligned_share < 1.0
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loss, metrics = loss_fn(model, collate(train_set, tok_s.pad_token_id or 0))
    assert torch.isfinite(loss) and loss > 0 and metrics["kd"] > 0 and metrics["ce"] > 0
    assert metrics["aligned"] == pytest.approx(loss_fn.aligned_share)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    for example in train_set:  # one target row per label, nothing for prompt or observation tokens
        assert loss_fn.targets[example.example_id].aligned.numel() == sum(x != IGNORE for x in example.labels[1:])

    # Resumable: the same examples again compute nothing; a missing file is scored again, alone.
    cache = XTeacherCache.build(tiny_qwen_dir, examples, tmp_path / "cache", k=8, progress=False, tokenizer=tok_t)
    assert cache.computed == ()
    (tmp_path / "cache" / "examples" / f"{hashlib.sha256(b'ca1').hexdigest()[:32]}.safetensors").unlink()
    again = XTeacherCache.build(tiny_qwen_dir, examples, tmp_path / "cache", k=8, progress=False, tokenizer=tok_t)
    assert again.computed == ("ca1",)
    assert {a[0] for a in again.rows("ca1").anchors if a is not None} == {2, 4}


def _invoke(*args: str):
    return CliRunner().invoke(train_command, list(args), catch_exceptions=False)


def test_train_command_xkd_writes_an_adapter(tiny_model_dir: Path, tiny_qwen_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    save_examples(data / "train.jsonl", [codeact(i) for i in range(4)])
    out = tmp_path / "run"
    common = ["--data", str(data), "--base", str(tiny_model_dir), "--train-steps", "2", "--batch-size", "2",
              "--lr", "1e-3", "--out", str(out), "--json"]  # fmt: skip
    result = _invoke(*common, "--method", "xkd", "--kd-teacher", str(tiny_qwen_dir), "--kd-top-k", "8")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "xkd" and summary["steps"] == 2 and summary["aligned_share"] > 0.5
    assert Path(summary["final_dir"], "adapter_model.safetensors").is_file()
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert math.isfinite(first["loss"]) and 0.5 < first["aligned"] < 1 and math.isfinite(first["kd"])
    assert len(list((out / "teacher-xkd" / "examples").iterdir())) == 4

    # Errors: a teacher sharing the student's tokenizer, a missing teacher, no teacher at all.
    with pytest.raises(SameTokenizer, match="use --method kd"):
        _invoke(*common[:-3], "--out", str(tmp_path / "same"), "--method", "xkd", "--kd-teacher", str(tiny_model_dir))
    missing = _invoke(*common, "--method", "xkd", "--kd-teacher", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "--kd-teacher" in missing.output and "no local teacher" in missing.output
    bare = _invoke(*common, "--method", "xkd")
    assert bare.exit_code == 2 and "needs --kd-teacher" in bare.output
    with pytest.raises(KDTokenizerMismatch):  # exact KD refuses the Qwen teacher (and its message points at sft)
        _invoke(*common, "--method", "kd", "--kd-teacher", str(tiny_qwen_dir))


def test_train_command_kd_with_a_same_tokenizer_teacher(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    save_examples(data / "train.jsonl", [codeact(i) for i in range(2)])
    result = _invoke("--data", str(data), "--base", str(tiny_model_dir), "--train-steps", "1", "--batch-size", "2",
                     "--method", "kd", "--kd-teacher", str(tiny_model_dir), "--kd-top-k", "8",
                     "--out", str(tmp_path / "run"), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        json.loads(result.stdout)["method"] == "kd" and (tmp_path / "run" / "teacher-logits" / "index.json").is_file()
    )
