"""TRL's SFTTrainer as `--engine trl`: the same tokens and loss positions as ours, the same run-dir layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.commands.distill_train import train as train_command
from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.data import encode_examples, save_examples
from agentdistill.distill.encoding import EncodedExample
from agentdistill.distill.trl_engine import pretokenized_rows

pytest.importorskip("trl")


def example(i: int) -> ChatExample:
    messages = [
        {"role": "system", "content": "Answer with a Thought and a Final Answer."},
        {"role": "user", "content": f"What is {i} times 3, plus {i}?"},
        {"role": "assistant", "content": f"Thought: {i} * 3 = {3 * i}, plus {i}.\nFinal Answer: {4 * i}"},
        {"role": "user", "content": "And doubled?"},
        {"role": "assistant", "content": f"Final Answer: {8 * i}"},
    ]
    return ChatExample(id=f"c{i}", run_id=f"r{i}", question=f"q{i}", messages=messages, train_turns=(2, 4))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    out.mkdir()
    save_examples(out / "train.jsonl", [example(i) for i in range(4)])
    save_examples(out / "val.jsonl", [example(9)])
    return out


def test_rows_carry_our_ids_and_loss_positions(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    [encoded], _ = encode_examples(AutoTokenizer.from_pretrained(tiny_model_dir), [example(3)], max_len=512)
    [row] = pretokenized_rows([encoded])
    assert row["input_ids"] == encoded.input_ids
    assert [i for i, m in enumerate(row["completion_mask"]) if m] == [
        i for i, label in enumerate(encoded.labels) if label != -100
    ]
    assert 0 < sum(row["completion_mask"]) < len(row["input_ids"])  # both assistant turns, not the prompts
    with pytest.raises(Exception, match="REDI negative.*--engine ours"):
        pretokenized_rows([EncodedExample("n", [1, 2], [-100, 2], label="negative")])


def run(data_dir: Path, base: Path, out: Path, engine: str, *extra: str) -> dict:
    args = ["--data", str(data_dir), "--base", str(base), "--train-steps", "2", "--batch-size", "4",
            "--grad-accum", "1", "--lr", "1e-3", "--eval-every", "1", "--engine", engine, "--out", str(out), "--json",
            *extra]  # fmt: skip
    result = CliRunner().invoke(train_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_trl_engine_trains_the_same_loss_and_leaves_our_layout(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    ours = run(data_dir, tiny_model_dir, tmp_path / "ours", "ours")
    trl = run(data_dir, tiny_model_dir, tmp_path / "trl", "trl")
    rows = {name: [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("ours", "trl")}  # fmt: skip
    # LoRA starts with B = 0, so step 1 is the base model's loss on the whole set (batch 4 = all 4 examples):
    # equal only if both engines train the same tokens at the same positions with the same token-mean loss.
    assert rows["trl"][0]["loss"] == pytest.approx(rows["ours"][0]["loss"], rel=1e-3)
    assert trl["engine"] == "trl" and trl["steps"] == 2 and trl["val_loss"] > 0
    assert trl["val_loss"] == pytest.approx(ours["val_loss"], rel=0.05)  # same data, lr and schedule
    final = Path(trl["final_dir"])
    assert (final / "adapter_model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["r"] == 64 and config["lora_alpha"] == 128  # our LoRA settings, passed through
    assert (tmp_path / "trl" / "loss.png").is_file() and (tmp_path / "trl" / "result.json").is_file()

    # The TRL-trained adapter is a student like any other: `--base student:DIR` continues it with our engine.
    more = run(data_dir, Path(f"student:{final}"), tmp_path / "more", "ours")
    assert more["init_adapter"] == str(final.resolve()) and more["steps"] == 2


def test_report_to_tensorboard_writes_event_files(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(data_dir, tiny_model_dir, tmp_path / "tb", "ours", "--report-to", "tensorboard")
    scalars = {}  # the run's scalars; accelerate writes the hyperparameters to a second event file
    for events in (tmp_path / "tb").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        scalars |= {tag: [e.step for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
    assert {"loss", "val_loss", "lr", "tokens_per_s"} <= set(scalars)
    assert scalars["loss"] == [1, 2]


def test_the_trl_export_loads_straight_into_sft_trainer_with_our_trained_tokens(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """data/trl/*.jsonl as TRL tokenizes it: loss on exactly our trained turns (plus the newline TRL keeps after
    each end-of-turn token, which the chat template writes there)."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from agentdistill.distill.train_setup import release_accelerator_state
    from agentdistill.distill.trl_export import export_trl

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    export_trl(tmp_path, [example(3), example(5)], [])
    data = load_dataset("json", data_files=str(tmp_path / "trl" / "train.jsonl"), split="train")
    config = SFTConfig(output_dir=str(tmp_path / "o"), use_cpu=True, report_to="none", max_steps=1)
    try:
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=config,
                             train_dataset=data, processing_class=tokenizer)  # fmt: skip
    finally:
        release_accelerator_state()  # the Trainer set accelerate's process-wide state; later tests set their own
    newline = tokenizer.encode("\n", add_special_tokens=False)
    theirs: dict[str, list[int]] = {}
    for row in trainer.train_dataset:  # one row per trained turn
        trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
        assert trained[-len(newline) :] == newline
        theirs[row["id"]] = theirs.get(row["id"], []) + trained[: -len(newline)]
    encoded, _ = encode_examples(tokenizer, [example(3), example(5)], max_len=4096)
    assert len(trainer.train_dataset) == 4
    for ours in encoded:
        assert theirs[ours.example_id] == [
            t for t, label in zip(ours.input_ids, ours.labels, strict=True) if label != -100
        ]
