"""Multi-process training: the accelerate configs in examples/accelerate load, and `distill train` runs on 2 processes.

The shipped configs are GPU ones (DDP, multi-node, FSDP, DeepSpeed) and cannot run here; accelerate launches
multi-CPU jobs only through mpirun. The 2-process CPU run goes through torchrun, which sets the same
RANK/WORLD_SIZE environment `accelerate launch` sets for DDP, so the CLI, the trainer and both engines take the
same distributed path as on GPUs (gloo instead of NCCL). test_ddp.py checks that 2 processes train the same
weights as 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.data import save_examples

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "accelerate"
EXPECTED = {
    "multi_gpu.yaml": "MULTI_GPU", "multi_node.yaml": "MULTI_GPU",
    "fsdp.yaml": "FSDP", "deepspeed_zero2.yaml": "DEEPSPEED", "deepspeed_zero3.yaml": "DEEPSPEED",
}  # fmt: skip


def test_every_shipped_config_is_listed_and_loads_in_accelerate() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)
    for name, kind in EXPECTED.items():
        config = load_config_from_file(str(CONFIGS / name))
        assert config.distributed_type == kind, name
        assert config.num_processes >= 2, name


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    out.mkdir()
    examples = []
    for i in range(6):
        messages = [{"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": f"Final Answer: {2 * i}"}]  # fmt: skip
        examples.append(ChatExample(id=f"c{i}", run_id=f"r{i}", question=f"q{i}", messages=messages, train_turns=(1,)))
    save_examples(out / "train.jsonl", examples[:4])
    save_examples(out / "val.jsonl", examples[4:])
    return out


def launch(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    env |= {"OMP_NUM_THREADS": "1", "AGENTDISTILL_HOME": str(home)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "agentdistill.cli", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("engine", ["ours", "trl"])
def test_distill_train_runs_on_two_processes(
    engine: str, tiny_model_dir: Path, data_dir: Path, tmp_path: Path, home: Path
) -> None:
    if engine == "trl":
        pytest.importorskip("trl")
    out = tmp_path / f"run-{engine}"
    args = ["distill", "train", "--data", str(data_dir), "--base", str(tiny_model_dir), "--train-steps", "2",
            "--batch-size", "1", "--grad-accum", "2", "--engine", engine, "--out", str(out), "--json"]  # fmt: skip
    done = launch(args, home)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # one summary: only the main process reports
    assert summary["steps"] == 2 and summary["engine"] == engine
    assert (out / "final" / "adapter_model.safetensors").is_file()
    if engine == "ours":
        assert json.loads((out / "train_config.json").read_text())["world_size"] == 2
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        first = rows[0]["tokens"]  # 2 processes x 2 micro-steps x 1 example, every token counted
        assert first > 4 * 10 and len(rows) == 2


def test_our_trainer_refuses_deepspeed_and_names_the_way_out(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import accelerate

    from agentdistill.distill.encoding import EncodedExample
    from agentdistill.distill.train_config import TrainConfig
    from agentdistill.distill.trainer import UnsupportedLaunch, train

    class DeepSpeedAccelerator:  # what accelerate hands out under a DeepSpeed launch config
        distributed_type = "DEEPSPEED"

        def __init__(self, **_: object) -> None:
            pass

    monkeypatch.setattr(accelerate, "Accelerator", DeepSpeedAccelerator)
    data = [EncodedExample("a", [1, 2, 3], [-100, 2, 3])]
    with pytest.raises(UnsupportedLaunch, match="--engine trl"):
        train(tiny_model_dir, data, [], TrainConfig(max_steps=1), tmp_path / "x", progress=False)
