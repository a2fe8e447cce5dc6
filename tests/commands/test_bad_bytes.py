"""Files that are not UTF-8 get one line naming the file and line, never a UnicodeDecodeError traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LATIN1 = b'{"id": "a", "title": "t", "text": "caf\xe9"}\n'


def agentdistill(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "from agentdistill.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, "--home", str(home), *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        ["kb", "build", "bad", "--from", "{file}", "--embedder", "hashing:64"],
        ["trajectories", "import", "{file}"],
        ["catalog", "import", "{file}", "--embedder", "hashing:64"],
    ],
    ids=["kb build", "trajectories import", "catalog import"],
)
def test_latin1_input_names_file_and_line(home: Path, tmp_path: Path, command: list[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(LATIN1)
    done = agentdistill(home, *[part.replace("{file}", str(bad)) for part in command])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{bad}:1: not UTF-8 text (byte 0xe9 at column 39): save the file as UTF-8" in done.stderr


def test_a_latin1_config_file_names_its_line(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b'# settings\nmodel = "caf\xe9"\n')
    done = agentdistill(home, "--config", str(config), "models", "list")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "byte 0xe9 on line 2 is not" in done.stderr and str(config) in done.stderr


def _scribble(path: Path, *, every: int = 8192, size: int = 1500) -> None:
    """Random bytes over a part of every other page: what a bad disk or a stray write leaves."""
    import os

    total = path.stat().st_size
    with path.open("r+b") as handle:
        for offset in range(4096 + 100, total, every):
            handle.seek(offset)
            handle.write(os.urandom(min(size, total - offset)))


def test_damaged_knowledge_store_files_are_named_on_open(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    rows = ({"id": f"d{i}", "title": f"T{i}", "text": f"word {i} " * 40} for i in range(300))
    docs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert agentdistill(home, "kb", "build", "k", "--from", str(docs), "--embedder", "hashing:64").returncode == 0
    [db] = (home / "kb" / "k").glob("gen-*/store.db")
    _scribble(db)
    done = agentdistill(home, "kb", "search", "k", "word 5")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{db}: its bytes changed since it was saved" in done.stderr
    assert agentdistill(home, "kb", "build", "ok", "--from", str(docs), "--embedder", "hashing:64").returncode == 0
    [manifest] = (home / "kb" / "k").glob("gen-*/manifest.json")
    manifest.unlink()  # `kb list` reads manifests only: a missing one must not hide the other stores
    listed = agentdistill(home, "kb", "list", "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["ok"]["documents"] == 300 and rows["k"]["problem"].endswith(
        "manifest.json: is missing. Rebuild it with `agentdistill kb build k --from FILE`."
    )


def test_a_damaged_trajectory_store_is_a_one_line_error(home: Path, tmp_path: Path) -> None:
    from agentdistill.memory.trajectories import TrajectoryStore
    from agentdistill.trajectory import Recorder

    path = home / "trajectories.db"
    with TrajectoryStore.open(path) as store:
        recorder = Recorder(store, agent="react")
        for i in range(400):
            run_id = recorder.start(f"question {i} " + "padding " * 30)
            recorder.finish(run_id, status="ok", answer=f"answer {i}")
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _scribble(path, every=4096 * 3, size=3000)
    done = agentdistill(home, "trajectories", "list", "--limit", "500")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"trajectory store {path}" in done.stderr and ("damaged" in done.stderr or "not a readable" in done.stderr)
