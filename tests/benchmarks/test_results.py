import json

import pytest

from agentdistill.benchmarks.results import ItemResult, RunDir, RunDirError, RunSpec


def _spec(**overrides):
    base = {"suite": "hotpotqa", "agent": "react", "model": "scripted:x", "item_ids": ("a", "b", "c")}
    return RunSpec(**{**base, **overrides})


def _result(item_id, correct=True):
    return ItemResult(item_id=item_id, status="ok", correct=correct, metrics={"em": float(correct)}, answer="x",
                      gold=("x",), run_id=f"run-{item_id}", prompt_tokens=10, completion_tokens=5)  # fmt: skip


def test_create_append_and_read_back(tmp_path):
    run = RunDir.create(tmp_path / "r", _spec())
    run.append(_result("a"))
    run.append(_result("b", correct=False))
    again = RunDir.open(tmp_path / "r")
    assert again.spec.same_work(_spec())
    assert [r.item_id for r in again.results()] == ["a", "b"]
    assert again.results()[1].correct is False and again.results()[0].tokens == 15
    assert again.pending_ids() == ["c"]


def test_create_refuses_an_existing_run(tmp_path):
    RunDir.create(tmp_path / "r", _spec())
    with pytest.raises(RunDirError, match="--resume"):
        RunDir.create(tmp_path / "r", _spec())


def test_open_names_a_directory_without_a_run(tmp_path):
    with pytest.raises(RunDirError, match="not a benchmark run directory"):
        RunDir.open(tmp_path)


def test_torn_last_line_is_skipped_and_repaired(tmp_path):
    run = RunDir.create(tmp_path / "r", _spec())
    run.append(_result("a"))
    with open(run.results_path, "a", encoding="utf-8") as f:
        f.write('{"item_id": "b", "stat')  # a writer killed mid-line
    assert [r.item_id for r in RunDir.open(tmp_path / "r").results()] == ["a"]
    repaired = RunDir.open(tmp_path / "r", repair=True)
    assert repaired.results_path.read_text().endswith("\n")
    repaired.append(_result("b"))
    assert [r.item_id for r in RunDir.open(tmp_path / "r").results()] == ["a", "b"]


def test_a_corrupt_middle_line_is_an_error_naming_the_line(tmp_path):
    run = RunDir.create(tmp_path / "r", _spec())
    with open(run.results_path, "a", encoding="utf-8") as f:
        f.write("not json\n")
    run.append(_result("a"))
    with pytest.raises(RunDirError, match=r"results.jsonl:1"):
        run.results()


def test_an_item_is_counted_once_even_if_written_twice(tmp_path):
    run = RunDir.create(tmp_path / "r", _spec())
    run.append(_result("a", correct=True))
    run.append(_result("a", correct=False))
    results = run.results()
    assert len(results) == 1 and results[0].correct is True


def test_same_work_ignores_label_and_time_but_not_items(tmp_path):
    assert _spec(label="teacher").same_work(_spec(created_at=0.0))
    assert not _spec().same_work(_spec(item_ids=("a", "b")))
    assert not _spec().same_work(_spec(options={"sag_n": 4}))
    spec = RunSpec.from_dict(json.loads(json.dumps(_spec(options={"k": (1, 2)}).to_dict())))
    assert spec.same_work(_spec(options={"k": [1, 2]}))


def test_a_run_grows_only_by_items_after_its_own(tmp_path):
    run = RunDir.create(tmp_path / "r", _spec())
    run.append(_result("a"))
    run.extend_items(("a", "b", "c", "d"))
    again = RunDir.open(tmp_path / "r")
    assert again.spec.item_ids == ("a", "b", "c", "d") and again.pending_ids() == ["b", "c", "d"]
    with pytest.raises(RunDirError, match="other items than the 4 asked for"):
        again.extend_items(("x", "b", "c", "d"))
