"""`distill train` through click: a dataset dir in, a trained adapter, metrics and a JSON summary out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.commands.distill_train import train
from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.data import save_examples
from agentdistill.models.weights import NotTrainable, local_weights


def example(i: int) -> ChatExample:
    messages = [
        {"role": "user", "content": f"What is {i} times 3?"},
        {"role": "assistant", "content": f"Thought: multiply.\nFinal Answer: {3 * i}"},
    ]
    return ChatExample(id=f"c{i}", run_id=f"r{i}", question=f"q{i}", messages=messages, train_turns=(1,))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    out.mkdir()
    save_examples(out / "train.jsonl", [example(i) for i in range(4)])
    save_examples(out / "val.jsonl", [example(9)])
    return out


def invoke(*args: str):
    return CliRunner().invoke(train, list(args), catch_exceptions=False)


def test_train_command_trains_and_reports_json(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--data", str(data_dir), "--base", str(tiny_model_dir), "--train-steps", "2", "--batch-size", "2",
              "--lr", "1e-3", "--save-every", "1", "--out", str(out), "--json"]  # fmt: skip
    result = invoke(*common)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 2 and summary["train_examples"] == 4 and summary["val_examples"] == 1
    assert summary["dropped_over_max_len"] == 0 and summary["val_loss"] > 0 and summary["resumed_from"] is None
    assert Path(summary["final_dir"], "adapter_model.safetensors").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    # Continuing from the trained adapter: `--base` an adapter dir loads its base and keeps training it.
    # (--max-steps, the old name of --train-steps, still works and says so.)
    again = invoke("--data", str(data_dir), "--base", f"student:{summary['final_dir']}", "--max-steps", "1",
                   "--batch-size", "2", "--out", str(tmp_path / "more"), "--json")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "--max-steps is now --train-steps" in again.stderr and json.loads(again.stdout)["steps"] == 1
    assert json.loads(again.stdout)["init_adapter"] == str(Path(summary["final_dir"]).resolve())


def test_examples_over_max_len_are_dropped_with_a_clear_error(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    from agentdistill.distill.trainer import NoTrainingData

    with pytest.raises(NoTrainingData, match="4 longer than --max-len 8"):
        invoke("--data", str(data_dir), "--base", str(tiny_model_dir), "--max-len", "8", "--out", str(tmp_path / "x"))


def test_missing_dataset_names_the_command_that_makes_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    from agentdistill.distill.trainer import NoTrainingData

    with pytest.raises(NoTrainingData, match="distill dataset"):
        invoke("--data", str(tmp_path / "nowhere"), "--base", str(tiny_model_dir), "--out", str(tmp_path / "x"))


def test_api_models_cannot_be_trained(tmp_path: Path) -> None:
    with pytest.raises(NotTrainable, match="openai:gpt-4o-mini"):
        local_weights("openai:gpt-4o-mini", tmp_path)
