"""DDP on two CPU processes (gloo, launched by torch.distributed.run) trains the same model as one process.

Two processes with batch 2 each see the same global batch of 4 as one process with batch 4 (the data plan
splits each global batch by rank), so the step losses and the final adapter must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentdistill.distill.checkpoints import step_dirs
from agentdistill.distill.train_config import TrainConfig
from agentdistill.distill.trainer import train

pytestmark = pytest.mark.integration

SCRIPT = """
import json, os, random, sys
from pathlib import Path
from agentdistill.distill.encoding import EncodedExample
from agentdistill.distill.train_config import TrainConfig
from agentdistill.distill.trainer import train

base, out, config = Path(sys.argv[1]), Path(sys.argv[2]), TrainConfig(**json.loads(sys.argv[3]))
rng = random.Random(0)
def example(i, length=20):
    ids = [rng.randrange(100, 3000) for _ in range(length)]
    return EncodedExample(f"ex{i}", ids, [-100] * (length // 2) + ids[length // 2:])
data = [example(i) for i in range(8)]
result = train(base, data[:6], data[6:], config, out, progress=False)
if os.environ["RANK"] == "0":
    print("RESULT", json.dumps({"steps": result.steps, "val_loss": result.val_loss}))
"""

SETTINGS = {
    "lr": 1e-3,
    "max_steps": 3,
    "grad_accum": 1,
    "warmup_ratio": 0.0,
    "lora_dropout": 0.0,
    "eval_every": 3,
    "save_every": 2,
}


def run_ddp(base: Path, out: Path, workdir: Path, config: dict) -> dict:
    script = workdir / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(base), str(out), json.dumps(config)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]  # rank 0 reports
    return json.loads(line.removeprefix("RESULT "))


def test_two_gloo_processes_match_one_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    import random

    from agentdistill.distill.encoding import EncodedExample

    rng = random.Random(0)
    data = []
    for i in range(8):  # the same examples the script builds
        ids = [rng.randrange(100, 3000) for _ in range(20)]
        data.append(EncodedExample(f"ex{i}", ids, [-100] * 10 + ids[10:]))
    single = train(tiny_model_dir, data[:6], data[6:], TrainConfig(batch_size=4, **SETTINGS), tmp_path / "one",
                   progress=False)  # fmt: skip
    ddp = run_ddp(tiny_model_dir, tmp_path / "two", tmp_path, {"batch_size": 2, **SETTINGS})

    rows_one = [json.loads(line) for line in single.metrics_path.read_text().splitlines()]
    rows_two = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert rows_two[0]["loss"] == pytest.approx(rows_one[0]["loss"], abs=1e-4)
    assert [r["loss"] for r in rows_two] == pytest.approx([r["loss"] for r in rows_one], abs=1e-4)
    assert rows_two[0]["tokens"] == rows_one[0]["tokens"] == 80  # both processes' tokens are counted
    assert ddp["steps"] == 3 and ddp["val_loss"] == pytest.approx(single.val_loss, abs=1e-4)
    one = load_file(single.adapter_dir / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "final" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-4
    assert not all(torch.equal(one[k], torch.zeros_like(one[k])) for k in one if "lora_B" in k)  # it did train
    [ckpt] = step_dirs(tmp_path / "two" / "checkpoints")  # both processes wrote their RNG into the one checkpoint
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and {"rng-0.pt", "rng-1.pt"} <= set(manifest["files"])
