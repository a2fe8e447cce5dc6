from __future__ import annotations

import pytest

from agentdistill.benchmarks.metrics import (
    exact_match,
    extract_final_number,
    f1_score,
    math_score,
    normalize_answer,
    qa_score,
)


def test_squad_normalisation_and_scores() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Beatles", "Beatles") == 1.0
    assert f1_score("President Barack Obama", "Barack Obama") == pytest.approx(0.8)
    assert f1_score("", "x") == 0.0


def test_qa_score_takes_the_best_alias_and_handles_abstention() -> None:
    s = qa_score("NYC", ["New York City", "NYC"])
    assert s.correct and s.em == 1.0
    assert not qa_score("Paris", ["London"]).correct
    assert qa_score("Insufficient information.", ["insufficient information"]).correct
    assert not qa_score("insufficient information", ["Canberra"]).correct
    assert not qa_score(None, ["x"]).correct


@pytest.mark.parametrize(
    ("prediction", "gold", "correct"),
    [
        ("The answer is 1,234 dollars", "1234", True),
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("so x = \\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt2}{2}", True),
        ("18", "18.0", True),
        ("17", "18", False),
        ("$18", "18", True),
    ],
)
def test_math_score(prediction: str, gold: str, correct: bool) -> None:
    assert math_score(prediction, [gold]).correct is correct


def test_extract_final_number_prefers_boxed_with_nested_braces() -> None:
    assert extract_final_number("first 3 then \\boxed{\\frac{3}{4}}") == "\\frac{3}{4}"
    assert extract_final_number("12 apples and 7 pears") == "7"
    assert extract_final_number("none") is None
