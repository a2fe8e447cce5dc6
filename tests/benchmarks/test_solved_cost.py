import math
from pathlib import Path

import pytest

from agentdistill.benchmarks.results import ItemResult, RunDir, RunSpec
from agentdistill.benchmarks.solved_cost import EvalRunsMissing, cost_rows, cost_table


def _eval_run(out: Path, role: str, model: str, rows: list[tuple[str, bool, float, int]]) -> None:
    ids = tuple(item_id for item_id, *_ in rows)
    run = RunDir.create(out / "eval" / role, RunSpec(suite="gsm8k", agent="codeact", model=model, item_ids=ids))
    for item_id, correct, seconds, tokens in rows:
        run.append(ItemResult(item_id=item_id, status="ok", correct=correct, metrics={}, answer="1", gold=("1",),
                              run_id=None, prompt_tokens=tokens, latency_s=seconds))  # fmt: skip


def test_cost_per_solved_item_uses_only_items_every_model_finished(tmp_path: Path) -> None:
    _eval_run(tmp_path, "teacher", "big", [("a", True, 10.0, 100), ("b", True, 10.0, 100), ("c", False, 10.0, 100)])
    _eval_run(tmp_path, "base-student", "small", [("a", False, 1.0, 50), ("b", False, 1.0, 50), ("c", False, 1.0, 50)])
    _eval_run(tmp_path, "student", "small+lora", [("a", True, 2.0, 60), ("b", False, 2.0, 60)])  # c unfinished
    teacher, base, student = cost_rows(tmp_path)
    assert (teacher.items, teacher.solved, teacher.seconds_per_solved) == (2, 2, 10.0)
    assert base.solved == 0 and math.isinf(base.seconds_per_solved) and math.isinf(base.ratio_to_teacher)
    assert (student.solved, student.seconds_per_solved, student.tokens_per_solved) == (1, 4.0, 120.0)
    assert student.ratio_to_teacher == pytest.approx(0.4)
    assert "0.40x  small+lora" in cost_table(tmp_path, [teacher, base, student])


def test_a_missing_teacher_eval_is_named(tmp_path: Path) -> None:
    with pytest.raises(EvalRunsMissing, match="eval/teacher is missing"):
        cost_rows(tmp_path)
