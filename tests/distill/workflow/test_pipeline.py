"""`distill run` end to end on the shipped GSM8K sample: scripted teacher, tiny random student, real files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.benchmarks.suites.registry import get_suite
from agentdistill.cli import cli
from agentdistill.distill.train_config import TrainConfig
from agentdistill.distill.workflow.plan import DistillPlan, NotEnoughItems, plan_dict, plan_from_dict, split_items
from agentdistill.errors import ConfigError


def _teacher_file(tmp_path: Path, train_limit: int) -> Path:
    """Reply i solves train item i (codeact format), so every collected run is correct."""
    train, _ = split_items(get_suite("gsm8k-sample"), None, train_limit, 2)
    replies = [f"Thought: compute it.\n```python\nfinal_answer({item.answer})\n```" for item in train]
    path = tmp_path / "teacher.json"
    path.write_text(json.dumps(replies), encoding="utf-8")
    return path


def _tiny_run_args(tmp_path: Path, student_dir: Path, home: Path, out: Path, *extra: str) -> list[str]:
    """`distill run` on 4 train / 2 eval sample items: scripted teacher, tiny student, `--json` last."""
    teacher = _teacher_file(tmp_path, 4)
    return ["--home", str(home), "distill", "run", "--agent", "codeact", "--suite", "gsm8k-sample",
            "--teacher", f"scripted:{teacher}", "--student", f"hf:{student_dir}", "--train-limit", "4",
            "--eval-limit", "2", "--batch-size", "2", "--grad-accum", "1", *extra, "--max-steps", "1",
            "--student-runtime", "transformers", "--out", str(out), "--json"]  # fmt: skip


def test_split_never_overlaps_and_needs_enough_items():
    train, held_out = split_items(get_suite("gsm8k-sample"), None, 30, 20)
    assert len(train) == 30 and len(held_out) == 20
    assert not {i.id for i in train} & {i.id for i in held_out}
    with pytest.raises(NotEnoughItems, match="lower --train-limit"):
        split_items(get_suite("gsm8k-sample"), None, 50, 20)


def test_kd_needs_a_kd_teacher():
    with pytest.raises(ConfigError, match="kd_teacher"):
        DistillPlan(agent="codeact", suite="gsm8k-sample", teacher="x", student="y", method="kd")


@pytest.mark.integration
def test_distill_run_with_a_full_fine_tune(tmp_path: Path, tiny_model_dir: Path, home: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, _tiny_run_args(tmp_path, tiny_model_dir, home, out, "--train-steps", "2", "--full")
    )
    assert result.exit_code == 0, result.output  # a full model is the student as it is: nothing to merge
    merged = out / "student" / "merged"
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    assert len((out / "eval" / "student" / "results.jsonl").read_text().splitlines()) == 2
    # too big to ship: compress it to a LoRA adapter, evaluated on the same items beside the full model
    args = ["--home", str(home), "distill", "compress", str(out), "--rank", "4", "--concurrency", "1", "--json"]
    compressed = CliRunner().invoke(cli, args)
    assert compressed.exit_code == 0, compressed.output
    shown = json.loads(compressed.stdout)
    assert shown["extract"]["rank"] == 4 and 0 < shown["extract"]["kept"] <= 1
    assert (out / "student" / "lora-r4" / "adapter" / "adapter_config.json").is_file()
    assert len((out / "eval" / "student-lora-r4" / "results.jsonl").read_text().splitlines()) == 2
    labels = [run["spec"]["label"].split(" (")[0] for run in shown["compare"]["runs"]]
    assert labels == ["teacher", "base-student", "student", "student-lora-r4"]
    lora_run = CliRunner().invoke(cli, ["--home", str(home), "distill", "compress", str(tmp_path), "--rank", "4"])
    assert lora_run.exit_code != 0 and "plan.json is missing" in str(lora_run.exception)


@pytest.mark.integration
def test_distill_run_end_to_end(tmp_path: Path, tiny_model_dir: Path, home: Path):
    out = tmp_path / "out"
    args = _tiny_run_args(tmp_path, tiny_model_dir, home, out, "--train-steps", "3", "--lora-r", "4")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    collected = [json.loads(line) for line in (out / "collect" / "results.jsonl").read_text().splitlines()]
    assert len(collected) == 4 and all(r["correct"] for r in collected)
    info = json.loads((out / "data" / "info.json").read_text())
    assert info["runs"] == 4 and info["train"] + info["val"] == 4
    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in metrics) == 3
    assert (out / "student" / "merged" / "config.json").is_file()
    compare = json.loads((out / "report" / "compare.json").read_text())
    assert len(compare["runs"]) == 3
    for label in ("teacher", "base-student", "student"):
        assert len((out / "eval" / label / "results.jsonl").read_text().splitlines()) == 2
    # A second run with the same flags finds every stage done and changes nothing.
    before = (out / "collect" / "results.jsonl").read_text()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert (out / "collect" / "results.jsonl").read_text() == before
    # Other flags on the same --out are refused, naming the field.
    other = CliRunner().invoke(cli, [*args[:-3], "--eval-limit", "3", "--out", str(out)])
    assert other.exit_code != 0 and "eval_limit = 2, not 3" in str(other.exception)


def test_collection_grows_with_the_train_limit_until_a_dataset_is_built(tmp_path: Path, home: Path):
    teacher = _teacher_file(tmp_path, 4)
    out = tmp_path / "out"

    def collect(limit: int):  # noqa: ANN202
        args = ["--home", str(home), "distill", "collect", "--agent", "codeact", "--suite", "gsm8k-sample",
                "--teacher", f"scripted:{teacher}", "--train-limit", str(limit), "--eval-limit", "2",
                "--max-steps", "1", "--concurrency", "1", "--out", str(out), "--json"]  # fmt: skip
        return CliRunner().invoke(cli, args)

    assert collect(2).exit_code == 0
    first = (out / "collect" / "results.jsonl").read_text()
    grown = collect(4)
    assert grown.exit_code == 0, grown.output
    lines = (out / "collect" / "results.jsonl").read_text()
    assert lines.startswith(first) and len(lines.splitlines()) == 4  # the first two were not asked again
    assert json.loads((out / "plan.json").read_text())["train_limit"] == 4
    assert len(json.loads((out / "collect" / "run.json").read_text())["item_ids"]) == 4
    (out / "data").mkdir()
    (out / "data" / "info.json").write_text("{}")
    refused = collect(6)
    assert refused.exit_code != 0 and "its dataset is built from 4 items already" in str(refused.exception)


def test_a_saved_plan_reads_back_as_the_same_plan(tmp_path: Path, home: Path):
    plan = DistillPlan(agent="codeact", suite="gsm8k-sample", teacher="local:a", student="local:b", roles=("main",),
                       train=TrainConfig(lora=False, lr=1e-4), options={"resample": True})  # fmt: skip
    assert plan_from_dict(json.loads(json.dumps(plan_dict(plan), default=str))) == plan
    out = tmp_path / "lora-run"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps(plan_dict(dataclasses.replace(plan, train=TrainConfig())), default=str))
    refused = CliRunner().invoke(cli, ["--home", str(home), "distill", "compress", str(out)])
    assert refused.exit_code != 0 and "rank-64 LoRA adapter: a rank-64 one would not be smaller" in str(
        refused.exception
    )
    unfinished = CliRunner().invoke(cli, ["--home", str(home), "distill", "compress", str(out), "--rank", "8"])
    assert unfinished.exit_code != 0 and "student/merged is missing: finish the run" in str(unfinished.exception)
    (out / "plan.json").write_text('{\n  "agent": oops')
    garbled = CliRunner().invoke(cli, ["--home", str(home), "distill", "compress", str(out)])
    assert garbled.exit_code != 0 and "plan.json line 2: not JSON" in str(garbled.exception)


def test_a_plan_written_before_a_training_field_existed_still_resumes(tmp_path: Path, home: Path):
    teacher = _teacher_file(tmp_path, 2)
    out = tmp_path / "out"

    def collect(*extra: str):  # noqa: ANN202
        args = ["--home", str(home), "distill", "collect", "--agent", "codeact", "--suite", "gsm8k-sample",
                "--teacher", f"scripted:{teacher}", "--train-limit", "2", "--eval-limit", "2", "--max-steps", "1",
                "--concurrency", "1", "--out", str(out), "--json", *extra]  # fmt: skip
        return CliRunner().invoke(cli, args)

    assert collect().exit_code == 0
    plan = json.loads((out / "plan.json").read_text())
    del plan["train"]["report_to"]  # as an older agentdistill wrote it
    (out / "plan.json").write_text(json.dumps(plan))
    resumed = collect("--report-to", "tensorboard")  # a tracker may change on resume: it logs, it does not train
    assert resumed.exit_code == 0, resumed.output
    other = collect("--lr", "1e-3")
    assert other.exit_code != 0 and "train" in str(other.exception) and "0.001" in str(other.exception)


def test_sampled_attempts_grade_the_train_items_and_curation_chooses(tmp_path: Path, home: Path):
    """`--attempts 2`: the teacher answers each train item again, sampled (OUT/collect-2); the dataset then knows
    each item's pass rate and keeps the shortest correct run per item. Attempts may grow before a dataset."""
    train, _ = split_items(get_suite("gsm8k-sample"), None, 2, 2)
    teacher, out = tmp_path / "teacher.json", tmp_path / "out"

    def collect(attempts: int, replies: list[str]):  # noqa: ANN202
        teacher.write_text(json.dumps(replies))  # a scripted model replays its file from the start when reopened
        args = ["--home", str(home), "distill", "collect", "--agent", "codeact", "--suite", "gsm8k-sample",
                "--teacher", f"scripted:{teacher}", "--train-limit", "2", "--eval-limit", "2", "--max-steps", "1",
                "--concurrency", "1", "--attempts", str(attempts), "--choose", "shortest", "--out", str(out),
                "--json"]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output

    collect(1, [f"Thought: compute it.\n```python\nfinal_answer({item.answer})\n```" for item in train])
    terse = f"```python\nfinal_answer({train[0].answer})\n```"
    collect(2, [terse, "Thought: no idea.\n```python\nfinal_answer(-1)\n```"])  # attempt 2 only: 1 is done
    assert len((out / "collect-2" / "results.jsonl").read_text().splitlines()) == 2
    plan = plan_from_dict(json.loads((out / "plan.json").read_text()))
    assert (plan.attempts, plan.choose) == (2, "shortest")
    from agentdistill.config import load_settings
    from agentdistill.distill.workflow.pipeline import Pipeline

    info = Pipeline(plan, load_settings(flags={"home": home}), out, say=lambda _: None).dataset()
    assert info["runs"] == 2 and info["difficulty"] == {"easy": 1, "medium": 1}
    trained = [json.loads(line)["messages"][-1]["content"] for line in (out / "data" / "train.jsonl").open()]
    assert terse in [t.strip() for t in trained]  # item 0's shorter, sampled answer was chosen
