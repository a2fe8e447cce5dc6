from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentdistill.errors import InputDataError, StoreError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.trajectory import Run, Step, StepError


def _run(store: TrajectoryStore, i: int, *, agent: str = "react", status: str = "ok", steps: int = 2) -> str:
    run = Run(id=f"run{i:04d}", agent=agent, question=f"q{i}", models={"policy": "scripted:x"})
    store.start_run(run)
    for k in range(steps):
        store.append_step(Step(run_id=run.id, index=k, kind="model", node="think", completion=f"c{k}",
                               messages_in=[{"role": "user", "content": f"q{i}"}], prompt_tokens=3,
                               completion_tokens=2))  # fmt: skip
    store.finish_run(run.id, status=status, answer=f"a{i}")  # type: ignore[arg-type]
    return run.id


def test_roundtrip_filters_and_scores(home: Path) -> None:
    store = TrajectoryStore.open(home / "t.db")
    _run(store, 1)
    _run(store, 2, status="max_steps")
    _run(store, 3, agent="lag")
    store.set_score("run0001", 1.0, {"em": 1.0}, suite="hotpotqa", item_id="h1")
    store.set_score("run0003", 0.0, {"em": 0.0}, suite="hotpotqa", item_id="h3")
    assert [r.id for r in store.runs(agent="react")] == ["run0001", "run0002"]
    assert [r.id for r in store.runs(status="max_steps")] == ["run0002"]
    assert [r.id for r in store.runs(min_score=1.0)] == ["run0001"]
    assert [r.id for r in store.runs(suite="hotpotqa", model="scripted:x")] == ["run0001", "run0003"]
    run = store.get("run0001")
    assert (run.score, run.metrics, run.item_id, run.prompt_tokens, run.completion_tokens) == (
        1.0,
        {"em": 1.0},
        "h1",
        6,
        4,
    )
    assert store.count(agent="lag") == 1
    with pytest.raises(StoreError, match="no run"):
        store.set_score("nope", 1.0, {})


def test_annotate_last_model_step(home: Path) -> None:
    store = TrajectoryStore.open(home / "t.db")
    rid = _run(store, 1)
    store.annotate_last_model_step(rid, parsed=None, error=StepError("parse_error", "no Action line"))
    steps = store.get(rid).steps
    assert steps[0].error is None and steps[1].error == StepError("parse_error", "no Action line")


def test_export_import_roundtrip_skips_existing(home: Path) -> None:
    store = TrajectoryStore.open(home / "a.db")
    for i in range(3):
        _run(store, i)
    assert store.export_jsonl(home / "runs.jsonl") == 3
    other = TrajectoryStore.open(home / "b.db")
    _run(other, 0)
    assert other.import_jsonl(home / "runs.jsonl") == (2, 1)
    assert [s.completion for s in other.get("run0002").steps] == ["c0", "c1"]
    assert other.get("run0001").to_dict() == store.get("run0001").to_dict()


def test_import_of_a_bad_line_names_file_and_line_and_adds_nothing(home: Path) -> None:
    store = TrajectoryStore.open(home / "a.db")
    _run(store, 1)
    store.export_jsonl(home / "runs.jsonl")
    with open(home / "runs.jsonl", "a") as f:
        f.write("{not json\n")
    fresh = TrajectoryStore.open(home / "b.db")
    with pytest.raises(InputDataError, match=r"runs.jsonl:2: not valid JSON"):
        fresh.import_jsonl(home / "runs.jsonl")
    assert fresh.count() == 0


def test_corrupt_file_is_a_clear_error(home: Path) -> None:
    path = home / "t.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        TrajectoryStore.open(path)


def test_newer_schema_is_refused(home: Path) -> None:
    path = home / "t.db"
    TrajectoryStore.open(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="upgrade agentdistill"):
        TrajectoryStore.open(path)


WRITER = textwrap.dedent(
    """
    import sys, time
    from agentdistill.memory.trajectories import TrajectoryStore
    from agentdistill.trajectory import Run, Step
    store = TrajectoryStore.open(sys.argv[1])
    i = 0
    while True:
        run = Run(id=f"r{i:06d}", agent="react", question="q" * 200)
        store.start_run(run)
        for k in range(3):
            store.append_step(Step(run_id=run.id, index=k, kind="model", node="n", completion="x" * 500))
        store.finish_run(run.id, status="ok", answer=str(i))
        print(i, flush=True)
        i += 1
    """
)


def test_kill_9_mid_write_leaves_every_committed_run_intact(home: Path) -> None:
    path = home / "t.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    finished = -1
    deadline = time.monotonic() + 30
    while finished < 200 and time.monotonic() < deadline:
        finished = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = TrajectoryStore.open(path)
    done = store.runs(status="ok")
    assert len(done) >= finished + 1 >= 200
    for run in done:
        assert len(run.steps) == 3 and run.answer == str(int(run.id[1:]))
    # at most one run was cut mid-way, and it is still readable, with the steps it committed
    assert store.count() - len(done) <= 1
    json.dumps([r.to_dict() for r in store.runs(status="running")])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, r"runs.jsonl:1: field 'id': must be a non-empty string, got None"),
        ({"schema_version": 99}, r"field 'schema_version': is 99: this agentdistill reads runs up to schema"),
        ({"status": "done"}, r"field 'status': is 'done', not one of running, ok"),
        ({"meta": []}, r"field 'meta': must be a JSON object"),
        ({"steps": "many"}, r"runs.jsonl:1: not a run record"),
    ],
)
def test_an_import_that_would_break_the_store_is_refused(home: Path, change: dict, message: str) -> None:
    store = TrajectoryStore.open(home / "a.db")
    _run(store, 1)
    store.export_jsonl(home / "runs.jsonl")
    row = {**json.loads((home / "runs.jsonl").read_text()), **change}
    (home / "runs.jsonl").write_text(json.dumps(row) + "\n")
    fresh = TrajectoryStore.open(home / "b.db")
    with pytest.raises(InputDataError, match=message):
        fresh.import_jsonl(home / "runs.jsonl")
    assert fresh.count() == 0 and fresh.runs() == []


def test_runs_of_a_killed_process_are_marked_abandoned_on_the_next_open(home: Path) -> None:
    import signal
    import subprocess
    import sys

    path = home / "t.db"
    code = (
        "import sys, time\nfrom agentdistill.memory.trajectories import TrajectoryStore\n"
        "from agentdistill.trajectory import Recorder\n"
        f"store = TrajectoryStore.open({str(path)!r})\nrecorder = Recorder(store, agent='react')\n"
        "print(recorder.start('question'), flush=True)\ntime.sleep(60)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    run_id = worker.stdout.readline().strip()
    with TrajectoryStore.open(path) as store:  # its process is alive: the run is still running
        assert store.get(run_id).status == "running"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with TrajectoryStore.open(path) as store:
        run = store.get(run_id)
    assert run.status == "error" and run.error is not None and run.error.kind == "abandoned"
    assert f"pid {worker.pid}" in run.error.message
