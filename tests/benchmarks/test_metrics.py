from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.benchmarks.metrics import (
    INSUFFICIENT,
    canonical_math_answer,
    exact_match,
    extract_final_number,
    f1_score,
    math_equal,
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


def test_abstention_phrases_inside_real_answers_are_not_abstentions() -> None:
    assert qa_score("Unknown Pleasures", ["Unknown Pleasures"]).correct
    assert not qa_score("insufficient information", ["Tomb of the Unknown Soldier"]).correct
    assert qa_score("Unknown.", ["insufficient information"]).correct
    assert qa_score("It cannot be determined from the passages.", [INSUFFICIENT]).correct


# (gold as in MATH-500, an equivalent answer a model writes)
MATH500_REWRITES = [
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi/2)"),
    (r"90^\circ", "90"),
    (r"90^\circ", r"\boxed{90^{\circ}}"),
    (r"3\sqrt{13}", r"\sqrt{117}"),
    (r"\frac{3}{56}", "3/56"),
    ("x=5", "5"),
    ("3, 5, 7", "7, 3, 5"),
    ("2516_8", "2516_{8}"),
    (r"1 \pm \sqrt{19}", r"1-\sqrt{19}, 1+\sqrt{19}"),
    (r"\text{east}", "East"),
    (r"\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}", "(-1/3, 2/3, 5/3)"),
    (r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}", "((-1, 0), (0, -1))"),
    ("(a+5)(b+2)", "(b+2)(a+5)"),
    (r"\frac{270}7\text{ degrees}", "270/7"),
    (r"10,\!080", "10080"),
    (r"11,\! 111,\! 111,\! 100", "11,111,111,100"),
    (r"\text{(C)}", "C"),
    (r"288 \pi", "288*pi"),
    (r"\$32,\!348", "$32,348"),
    (r"864 \mbox{ inches}^2", "864 square inches"),
    (r"\left(\frac{3}{5},\frac{8}{3}\right]", "(0.6, 8/3]"),
    (r"5.4 \text{ cents}", "5.4"),
    (r"\{1\pm\sqrt{5},-2\}", r"-2, 1+\sqrt5, 1-\sqrt5"),
    (r"(-\infty, 2) \cup (3, \infty)", r"(-\infty,2)\cup(3,\infty)"),
    (r"137 \frac{1}{2}", "275/2"),
    (r"\frac{20000}{\pi}", r"20000/\pi"),
    (r"\dfrac{17}{50}", "0.34"),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    ("y = 2x + 3", "2x+3"),
    (r"\text{Navin}", "navin"),
]


@pytest.mark.parametrize(("gold", "prediction"), MATH500_REWRITES)
def test_math500_answers_match_equivalent_rewrites(gold: str, prediction: str) -> None:
    assert math_score(prediction, [gold]).correct
    assert math_score(f"The answer is $\\boxed{{{gold}}}$.", [gold]).correct


@pytest.mark.parametrize(
    ("gold", "prediction"),
    [
        ("18", "17"),
        (r"\text{(C)}", "(B)"),
        (r"(5,\infty)", r"[5,\infty)"),
        ("2516_8", "2517_8"),
        (r"3\pi", "3"),
        (r"\sqrt{2}", "1.41"),
        ("3, 5, 7", "3, 5"),
        (r"\text{east}", "west"),
    ],
)
def test_math500_near_misses_are_wrong(gold: str, prediction: str) -> None:
    assert not math_score(prediction, [gold]).correct


@pytest.mark.parametrize("prediction", ["$18", "18 dollars", "18%", "\\$18.00", "She makes $18 every day."])
def test_units_and_currency_are_stripped(prediction: str) -> None:
    assert math_score(prediction, ["18"]).correct


def test_real_math500_golds_match_themselves_and_do_not_match_each_other(shared_data: Path) -> None:
    rows = [json.loads(line) for line in (shared_data / "math/math500_shared.jsonl").open(encoding="utf-8")][:30]
    golds = [r["answer"] for r in rows]
    for gold in golds:
        assert math_score(f"so the answer is \\boxed{{{gold}}}", [gold]).correct, gold
        assert math_score(f"${gold}$", [gold]).correct, gold
    distinct = sorted(set(golds))
    matched = {(a, b) for a in distinct for b in distinct if a != b and math_equal(a, b)}
    assert matched == {("5", "x=5"), ("x=5", "5")}  # the only truly equal pair among these 30


def test_a_sympy_fault_is_a_wrong_answer_not_a_crash() -> None:
    assert not math_score("(1, 2)^{(3, 4)}", ["5"]).correct
    assert canonical_math_answer(r"\boxed{\frac{1}{2}}") == r"\boxed{\frac{1}{2}}"


def test_math_em_never_matches_by_stripping_punctuation() -> None:
    # A real GSM8K run scored the answer 2.0 as an exact match of the gold 20 (SQuAD normalisation drops ".").
    for prediction, gold in (("2.0", "20"), ("-5", "5"), ("0.5", "05.")):
        score = math_score(prediction, [gold])
        assert not score.correct and score.em == 0.0, prediction
    assert math_score("72.0", ["72"]).em == 1.0 and math_score("  Evelyn ", ["evelyn"]).em == 1.0
