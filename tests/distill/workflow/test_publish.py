"""`distill publish`: a finished run becomes `student:NAME`, with a card written from the run's own files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.distill.train_config import TrainConfig
from agentdistill.distill.workflow.plan import DistillPlan, plan_dict
from agentdistill.distill.workflow.publish import PublishError, plan_command, publish_student
from agentdistill.models import ModelOptions, make_chat_model, user
from agentdistill.models.students import packaged_students, user_students_root


def cli_train(**fields: object) -> TrainConfig:
    """The TrainConfig `distill run` builds from its flag defaults."""
    return TrainConfig(**{"batch_size": 2, "grad_accum": 2, "lora_r": 64, "lora_alpha": 128, **fields})


def plan(**fields: object) -> dict:
    base = dict(agent="recbot", suite="rec-netflix", teacher="local:qwen2.5-coder-1.5b", student="local:smollm2-135m",
                train_limit=250, eval_limit=100, roles=("parser",), min_score=None,
                min_metrics={"turn_parse_accuracy": 1.0}, options={"max_turns": 3, "planner": False},
                train=cli_train(lora_r=8, lora_alpha=16, epochs=3))  # fmt: skip
    return json.loads(json.dumps(plan_dict(DistillPlan(**{**base, **fields})), default=str))


def finished_run(out: Path, adapter_maker=None, **plan_fields: object) -> Path:  # noqa: ANN001
    (out / "data").mkdir(parents=True)
    (out / "report").mkdir()
    (out / "plan.json").write_text(json.dumps(plan(**plan_fields)))
    version = {"data_sha256": "ab" * 32, "teachers": ["local:qwen2.5-coder-1.5b"], "prompt_hashes": ["p1"]}
    (out / "data" / "info.json").write_text(json.dumps({"runs": 61, "train": 55, "val": 6, "version": version}))
    labels = [("teacher", "local:qwen2.5-coder-1.5b", 0.47), ("base-student", "local:smollm2-135m", 0.1),
              ("student", "gguf:x.gguf", 0.52)]  # fmt: skip
    runs = [{"name": f"recbot/{m}", "spec": {"model": m, "label": f"{lab} ({m})"}} for lab, m, _ in labels]
    rows = [{"n": 100, "accuracy": 0.05, "accuracy_ci95": [0.02, 0.11], "parse_accuracy": p, "latency_p50": 3.21}
            for _, _, p in labels]  # fmt: skip
    paired = {"both_right": 2, "only_a": 1, "only_b": 3, "both_wrong": 94, "n": 100, "mcnemar_p": 0.625}
    (out / "report" / "compare.json").write_text(json.dumps({"runs": runs, "compared": rows, "paired": paired}))
    adapter = out / "student" / "adapter"
    if adapter_maker is None:
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text("{}")
        (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    else:
        adapter_maker(adapter)
    return out


def test_the_card_comes_from_the_run_files(tmp_path: Path) -> None:
    out = finished_run(tmp_path / "run")
    card = publish_student(out, "recbot-parser-135m", tmp_path / "students", description="parser")
    assert card.spec == "student:recbot-parser-135m" and card.base == "local:smollm2-135m"
    assert card.teacher == "local:qwen2.5-coder-1.5b" and card.agent == "recbot"
    assert card.dataset["data_sha256"] == "ab" * 32 and card.dataset["train_examples"] == 55
    assert card.scores["student"]["parse_accuracy"] == 0.52 and card.scores["teacher"]["model"].startswith("local:")
    assert card.scores["paired"]["mcnemar_p"] == 0.625
    assert card.headline() == "parse_accuracy 0.520 vs teacher 0.470 (n=100)"
    assert card.command == (
        "agentdistill distill run --agent recbot --suite rec-netflix --teacher local:qwen2.5-coder-1.5b "
        "--student local:smollm2-135m --train-limit 250 --eval-limit 100 --epochs 3 --lora-r 8 "
        "--option max_turns=3 --option planner=false --roles parser --min-score -1 "
        "--min-metric turn_parse_accuracy=1 --out runs/recbot-parser-135m"
    )
    assert sorted(p.name for p in card.path.iterdir()) == ["README.md", "adapter_config.json",
                                                          "adapter_model.safetensors", "card.json"]  # fmt: skip
    assert [c.name for c in packaged_students(tmp_path / "students")] == ["recbot-parser-135m"]
    # README.md is a Hub model card: the folder uploads as a repo, peft loads it
    readme = (card.path / "README.md").read_text()
    header = readme.split("---")[1]
    assert 'library_name: "peft"' in header and 'base_model: "HuggingFaceTB/SmolLM2-135M-Instruct"' in header
    assert "| student | `" in readme and "| teacher | `local:qwen2.5-coder-1.5b` |" in readme and "paired" not in readme
    assert card.command in readme and "## Held-out scores" in readme


def test_publishing_again_needs_force_and_replaces_whole(tmp_path: Path) -> None:
    out = finished_run(tmp_path / "run")
    publish_student(out, "s", tmp_path / "students")
    with pytest.raises(PublishError, match="exists: pass --force"):
        publish_student(out, "s", tmp_path / "students")
    (out / "student" / "adapter" / "adapter_model.safetensors").write_bytes(b"better")
    card = publish_student(out, "s", tmp_path / "students", force=True)
    assert (card.path / "adapter_model.safetensors").read_bytes() == b"better"
    assert sorted(p.name for p in (tmp_path / "students").iterdir()) == ["s"]  # no staging or retired folder left


def test_what_cannot_be_published_is_named(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match=r"plan.json is missing: run `agentdistill distill run"):
        publish_student(tmp_path, "s", tmp_path / "students")
    full = finished_run(tmp_path / "full", train=cli_train(lora=False))
    with pytest.raises(PublishError, match="is a full fine-tune .*run `agentdistill distill compress .* --rank 64`"):
        publish_student(full, "s", tmp_path / "students")
    hf = finished_run(tmp_path / "hf", student="hf:/some/dir")
    with pytest.raises(PublishError, match="a published student's base must be a packaged model"):
        publish_student(hf, "s", tmp_path / "students")
    no_eval = finished_run(tmp_path / "no-eval")
    (no_eval / "report" / "compare.json").unlink()
    with pytest.raises(PublishError, match="compare.json is missing: run `agentdistill distill eval"):
        publish_student(no_eval, "s", tmp_path / "students")
    (no_eval / "report" / "compare.json").write_text("{\n  oops")
    with pytest.raises(PublishError, match=r"compare.json line 2: not JSON"):
        publish_student(no_eval, "s", tmp_path / "students")
    with pytest.raises(PublishError, match="plain folder name"):
        publish_student(finished_run(tmp_path / "ok"), "../escape", tmp_path / "students")


def compressed(out: Path, rank: int, parse_accuracy: float | None) -> None:
    """What `distill compress OUT --rank R` leaves: the adapter, its extract.json and (evaluated) its eval row."""
    adapter = out / "student" / f"lora-r{rank}" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": rank}))
    (adapter / "adapter_model.safetensors").write_bytes(b"factors")
    extract = {"rank": rank, "modules": 210, "kept": 0.86312, "linear_share": 0.89, "left_out": {"embed_tokens": 0.11}}
    (adapter / "extract.json").write_text(json.dumps(extract))
    if parse_accuracy is not None:
        compare = json.loads((out / "report" / "compare.json").read_text())
        model = f"gguf:{adapter.parent}/student-f16.gguf"
        compare["runs"].append(
            {"name": f"recbot/{model}", "spec": {"model": model, "label": f"student-lora-r{rank} ({model})"}}
        )
        compare["compared"].append({"n": 100, "parse_accuracy": parse_accuracy})
        compare["paired"] = None
        (out / "report" / "compare.json").write_text(json.dumps(compare))


def test_a_full_fine_tune_ships_its_compressed_adapter_with_its_own_scores(tmp_path: Path) -> None:
    out = finished_run(tmp_path / "full", train=cli_train(lora=False))
    shutil.rmtree(out / "student" / "adapter")
    compressed(out, 64, parse_accuracy=0.5)
    card = publish_student(out, "parser-full", tmp_path / "students")
    assert card.scores["student"]["parse_accuracy"] == 0.5  # the shipped adapter's own eval, not the full model's
    assert card.scores["student-full"]["parse_accuracy"] == 0.52
    assert card.headline() == "parse_accuracy 0.500 vs teacher 0.470 (n=100)"
    data = json.loads((card.path / "card.json").read_text())
    assert data["compressed"]["rank"] == 64 and data["compressed"]["kept"] == 0.8631
    assert data["training"]["full_fine_tune"] is True and "--full" in card.command
    assert card.command.endswith("--out runs/parser-full && agentdistill distill compress runs/parser-full --rank 64")
    assert (card.path / "adapter_model.safetensors").read_bytes() == b"factors"
    compressed(out, 16, parse_accuracy=None)
    with pytest.raises(PublishError, match="adapters of rank 16, 64: pick one with --rank"):
        publish_student(out, "x", tmp_path / "students")
    with pytest.raises(PublishError, match="has not been evaluated: run `agentdistill distill compress .* --rank 16`"):
        publish_student(out, "x", tmp_path / "students", rank=16)
    with pytest.raises(PublishError, match="no rank-8 adapter"):
        publish_student(out, "x", tmp_path / "students", rank=8)


def test_a_lora_run_ships_its_own_adapter_or_the_smaller_one_compress_cut(tmp_path: Path) -> None:
    out = finished_run(tmp_path / "lora", train=cli_train())
    own = publish_student(out, "own", tmp_path / "students")
    assert (own.path / "adapter_model.safetensors").read_bytes() == b"weights"
    with pytest.raises(PublishError, match="no rank-16 adapter: run `agentdistill distill compress .* --rank 16`"):
        publish_student(out, "cut", tmp_path / "students", rank=16)
    compressed(out, 16, parse_accuracy=0.49)
    assert publish_student(out, "own-again", tmp_path / "students").scores["student"]["parse_accuracy"] == 0.52
    card = publish_student(out, "cut", tmp_path / "students", rank=16)
    assert (card.path / "adapter_model.safetensors").read_bytes() == b"factors"
    assert card.scores["student"]["parse_accuracy"] == 0.49 and card.scores["student-r64"]["parse_accuracy"] == 0.52
    data = json.loads((card.path / "card.json").read_text())
    assert data["compressed"]["rank"] == 16 and data["training"]["full_fine_tune"] is False
    assert "--full" not in card.command and card.command.endswith("distill compress runs/cut --rank 16")


def test_default_flags_stay_out_of_the_command() -> None:
    line = plan_command(plan(roles=(), min_score=1.0, min_metrics={}, options={}, train=cli_train()), out_hint="o")
    assert line == ("agentdistill distill run --agent recbot --suite rec-netflix --teacher local:qwen2.5-coder-1.5b "
                    "--student local:smollm2-135m --train-limit 250 --eval-limit 100 --out o")  # fmt: skip


@pytest.mark.integration
def test_a_published_student_loads_by_name_in_the_cli(tmp_path: Path, home: Path) -> None:
    from agentdistill.models.packaged import ensure_hf_dir, find_packaged, is_installed
    from agentdistill.paths import cache_dir

    if not is_installed(find_packaged("smollm2-135m"))[0]:
        pytest.skip("packaged SmolLM2 not installed")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def real_adapter(folder: Path) -> None:
        base = AutoModelForCausalLM.from_pretrained(ensure_hf_dir(find_packaged("smollm2-135m"), cache_dir()))
        get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(folder)

    out = finished_run(tmp_path / "run", adapter_maker=real_adapter)
    result = CliRunner().invoke(cli, ["--home", str(home), "distill", "publish", str(out), "--name", "mine", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["path"] == str(user_students_root() / "mine")
    listed = CliRunner().invoke(cli, ["--home", str(home), "models", "list", "--json"])
    assert "student:mine" in [s["spec"] for s in json.loads(listed.output)["students"]]
    model = make_chat_model("student:mine", ModelOptions(threads=2))
    [reply] = model.generate([user("What is 2 + 3?")], max_tokens=4)
    assert model.spec == "student:mine" and reply.usage.completion_tokens >= 1
