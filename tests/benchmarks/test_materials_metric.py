"""The materials metric: orderings by label or word (no hedging), numbers within 2%, ids and formulas not numbers."""

from __future__ import annotations

import pytest

from agentdistill.benchmarks.materials_metric import materials_score, orderings_named, standalone_numbers
from agentdistill.benchmarks.metrics import METRICS


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Fe2O3 is ferrimagnetic (FiM), mp-19770", {"FiM"}),
        ("antiferromagnetic", {"AFM"}),
        ("It is anti-ferromagnetic.", {"AFM"}),
        ("non-magnetic (NM)", {"NM"}),
        ("FM or AFM", {"FM", "AFM"}),
        ("ferromagnetic", {"FM"}),
        ("no idea", set()),
    ],
)
def test_orderings_are_read_by_label_or_word(text: str, named: set[str]) -> None:
    assert orderings_named(text) == named


def test_formula_and_id_digits_are_not_numbers() -> None:
    assert standalone_numbers("Fe2O3 (mp-19770) has 4.01 muB/f.u., 1,234.5 and -1.5e-2") == [4.01, 1234.5, -0.015]


def test_scores() -> None:
    score = METRICS["materials"]
    assert score("ferrimagnetic, mp-19770", ["FiM"]).correct
    assert not score("FM or FiM", ["FiM"]).correct  # a hedge is wrong
    assert not score("ferromagnetic", ["FiM"]).correct
    assert score("about 159.7 g/mol", ["159.69"]).correct  # within 2%
    assert not score("about 170 g/mol", ["159.69"]).correct
    assert score("0.005 eV", ["0.0"]).correct  # near zero: absolute tolerance
    assert not score("values: 1.0, 2.0, 3.0, 159.69", ["159.69"]).correct  # a dump of numbers is not an answer
    assert not score(None, ["FM"]).correct and materials_score("", ["1.0"]).f1 == 0.0


def test_an_id_gold_wants_that_id_and_no_other() -> None:
    assert materials_score("mp-13", ["mp-13"]).correct
    assert materials_score("It is MP-13 (2.1 eV).", ["mp-13"]).correct  # the id, any case, with its value
    assert not materials_score("mp-13 (2.1 eV) rather than mp-136 (1.2 eV)", ["mp-13"]).correct  # names both
    assert not materials_score("mp-136", ["mp-13"]).correct and not materials_score("Fe", ["mp-13"]).correct
