"""On-policy distillation on tiny random models: the student's own tokens, scored by a same-tokenizer teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from agentdistill.benchmarks.suite_run import SuiteAgent
from agentdistill.benchmarks.suites.registry import get_suite, load_items
from agentdistill.cli import cli
from agentdistill.distill import trainer
from agentdistill.distill.data import load_examples
from agentdistill.distill.encoding import EncodedExample, collate
from agentdistill.distill.kd import TeacherCache
from agentdistill.distill.onpolicy import CrossTokenizerTeacher, OnPolicy, OnPolicyConfig
from agentdistill.distill.onpolicy_loss import MissingAdvantage, onpolicy_loss
from agentdistill.distill.redi import sequence_log_likelihood
from agentdistill.distill.tokenizer_fingerprint import KDTokenizerMismatch
from agentdistill.distill.train_config import TrainConfig
from agentdistill.memory.trajectories import TrajectoryStore

TRAIN = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, max_steps=2, batch_size=2, grad_accum=1, lr=1e-2,
                    save_every=1, eval_every=10, device="cpu")  # fmt: skip


def _tiny(source: Path, out: Path, seed: int, *, extra_token: str | None = None) -> Path:
    """Another random 2-layer llama; `extra_token` gives it a tokenizer the student does not share."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(source)
    if extra_token is not None:
        tokenizer.add_tokens([extra_token])
    model = LlamaForCausalLM.from_pretrained(source)
    torch.manual_seed(seed)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def teacher_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tiny_model_dir, tmp_path_factory.mktemp("teacher"), seed=1)


def _job(student: Path, teacher: Path, out: Path, store: TrajectoryStore, **config) -> OnPolicy:
    suite = get_suite("gsm8k-sample")
    setup = SuiteAgent(suite, "cot", {})
    items = load_items(suite, None, limit=3)
    config = OnPolicyConfig(**{"rounds": 2, "items_per_round": 2, "max_tokens": 8, "top_k": 5, "train": TRAIN,
                               **config})  # fmt: skip
    return OnPolicy(config, student=f"hf:{student}", teacher=f"hf:{teacher}", setup=setup, items=items, store=store,
                    out=out, cache=out / "cache", say=lambda message: None, progress=False)  # fmt: skip


def _adapter(final: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(final) / "adapter_model.safetensors"))


def test_rounds_roll_out_the_student_train_on_its_ids_and_resume(
    tiny_model_dir: Path, teacher_dir: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_train, inits = trainer.train, []

    def spy(*args, **kw):
        inits.append(kw.get("init_adapter"))
        return real_train(*args, **kw)

    monkeypatch.setattr(trainer, "train", spy)
    out = tmp_path / "onpolicy"
    with TrajectoryStore.open(home / "trajectories.db") as store:
        first, second = _job(tiny_model_dir, teacher_dir, out, store).run()
        runs = store.runs()
        assert len(runs) == 4  # 2 items per round, one call each (cot)
        by_round = {1: f"hf:{tiny_model_dir}", 2: f"hf:{first.final_dir}"}
        for run in runs:  # every rollout is the student's: the base, then the base with round 1's adapter
            assert {s.model for s in run.steps} == {by_round[run.meta["onpolicy_round"]]}
            assert run.suite == "gsm8k-sample:train" and run.score is not None
        assert (first.model, second.model) == (by_round[1], by_round[2])
        assert inits == [None, Path(first.final_dir)]  # round 2 trains on from round 1's adapter
        for result in (first, second):
            rdir = out / f"round-{result.round:02d}"
            examples = load_examples(rdir / "examples.jsonl")
            assert examples and all(e.tokens for e in examples)  # the student's own sampled ids
            assert result.examples >= 1 and result.kd_loss is not None and result.steps == 2
            assert len(TeacherCache.open(rdir / "teacher-topk")) == result.examples
        a, b = _adapter(first.final_dir), _adapter(second.final_dir)
        assert any(not torch.equal(a[k], b[k]) for k in a)  # round 2 moved the adapter on
        assert any(k.endswith("lora_B.weight") and a[k].abs().sum() > 0 for k in a)  # B starts at 0: it trained
        lines = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
        assert [line["round"] for line in lines] == [1, 2]

        inits.clear()
        (out / "round-02" / "round.json").unlink()  # killed after training, before its marker
        again = _job(tiny_model_dir, teacher_dir, out, store).run()
        assert [r.final_dir for r in again] == [first.final_dir, second.final_dir]
        assert len(store.runs()) == 4  # no rollout ran again; round 1 was skipped, round 2 reused its parts
        assert inits == [Path(first.final_dir)]  # the trainer found round 2 finished

        with pytest.raises(Exception, match="top_k = 5, not 6"):
            _job(tiny_model_dir, teacher_dir, out, store, top_k=6).run()


def test_a_teacher_with_another_tokenizer_is_refused_before_any_rollout(
    tiny_model_dir: Path, home: Path, tmp_path: Path
) -> None:
    other = _tiny(tiny_model_dir, tmp_path / "other", seed=2, extra_token="<other>")
    with TrajectoryStore.open(home / "trajectories.db") as store:
        with pytest.raises(CrossTokenizerTeacher, match="cross-tokenizer method") as info:
            _job(tiny_model_dir, other, tmp_path / "out", store).run()
        assert isinstance(info.value, KDTokenizerMismatch) and "vocab sizes" in str(info.value)
        assert store.runs() == []


class _FixedKD:
    """Stands in for KDLoss: a constant, so the test sees the reward term alone."""

    def __call__(self, model, batch):
        return torch.tensor(0.5), {"kl": 0.5}


def test_the_reward_term_is_reinforce_on_the_students_log_likelihood(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = [[1, 5, 9, 12, 7, 3], [1, 8, 4, 6, 2]]
    batch = collate([EncodedExample("good", ids[0], [-100, -100, 9, 12, 7, 3]),
                     EncodedExample("bad", ids[1], [-100, -100, -100, 6, 2])], pad_id=0)  # fmt: skip
    advantage = {"good": 0.5, "bad": -0.5}  # rewards 1 and 0, baseline 0.5
    pure, _ = onpolicy_loss(_FixedKD(), 0.0, advantage)(model, batch)  # type: ignore[arg-type]
    mixed, metrics = onpolicy_loss(_FixedKD(), 2.0, advantage)(model, batch)  # type: ignore[arg-type]
    ll, _ = sequence_log_likelihood(model, batch)
    expected = 0.5 + 2.0 * -(0.5 * ll[0] - 0.5 * ll[1]) / 2
    assert float(pure) == 0.5 and float(mixed.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert metrics["reward_term"] == pytest.approx((float(mixed.detach()) - 0.5) / 2.0, rel=1e-5)
    model.zero_grad()
    mixed.backward()  # descending the loss raises the good completion's likelihood and lowers the bad one's
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 1e-1 * p.grad
    after, _ = sequence_log_likelihood(model, batch)
    assert after[0] > ll[0] and after[1] < ll[1]
    with pytest.raises(MissingAdvantage, match="'bad'"):
        onpolicy_loss(_FixedKD(), 1.0, {"good": 1.0})(model, batch)  # type: ignore[arg-type]


def test_cli_runs_a_round_and_prints_its_figures(tiny_model_dir: Path, teacher_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["distill", "onpolicy", "--agent", "cot", "--suite", "gsm8k-sample", "--teacher", f"hf:{teacher_dir}",
            "--student", f"hf:{tiny_model_dir}", "--rounds", "1", "--items", "2", "--eval-limit", "2", "--max-tokens",
            "8", "--train-steps", "1", "--lora-r", "4", "--grad-accum", "1", "--reward-weight", "0.5", "--top-k", "5",
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [round_] = json.loads(result.stdout)["rounds"]
    assert round_["round"] == 1 and round_["items"] == 2 and round_["steps"] == 1 and round_["examples"] >= 1
    assert round_["reward_term"] is not None  # the reward term ran (zero when both rollouts score the same)
    again = CliRunner().invoke(cli, args, catch_exceptions=False)  # finished: a table, nothing recomputed
    assert again.exit_code == 0 and "mean reward" in again.stdout and "kd loss" in again.stdout
    help_text = CliRunner().invoke(cli, ["distill", "onpolicy", "--help"]).output
    assert "--reward-weight" in help_text and "reverse KL" in help_text
