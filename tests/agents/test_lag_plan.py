"""LAG plan rules without a model: tolerant JSON, DAG validation, order, placeholders, answer parsing."""

from __future__ import annotations

import json

import pytest

from agentdistill.agents.lag_plan import (
    Decomposition,
    PlanError,
    SubQuestion,
    is_unanswerable,
    parse_decomposition,
    parse_short_answer,
    passage_refs,
    placeholders,
    render_chain,
    render_history,
    substitute,
    topological_order,
)

TWO_HOPS = {
    "subquestions": [
        {"id": "q1", "question": "Who directed Jaws?", "depends_on": []},
        {"id": "q2", "question": "Who is the spouse of #q1?", "depends_on": ["q1"]},
    ]
}


def sub(id: str, *deps: str, question: str = "What?") -> dict:
    return {"id": id, "question": question, "depends_on": list(deps)}


def test_plain_json_parses_into_subquestions_with_dependencies() -> None:
    plan = parse_decomposition(json.dumps(TWO_HOPS))
    assert [(s.id, s.depends_on) for s in plan.subquestions] == [("q1", []), ("q2", ["q1"])]


def test_code_fences_and_leading_prose_are_tolerated() -> None:
    text = f"Sure! Here is the plan:\n```json\n{json.dumps(TWO_HOPS, indent=2)}\n```\nHope this helps."
    assert parse_decomposition(text).subquestions[1].question == "Who is the spouse of #q1?"


def test_prose_with_braces_before_the_json_is_skipped() -> None:
    text = "I will use {q1} style refs. " + json.dumps(TWO_HOPS)
    assert len(parse_decomposition(text).subquestions) == 2


def test_a_bare_list_and_numeric_ids_are_accepted() -> None:
    text = json.dumps([{"id": 1, "question": "Who directed Jaws?"}, {"id": 2, "question": "Spouse?", "depends_on": 1}])
    plan = parse_decomposition(text)
    assert [(s.id, s.depends_on) for s in plan.subquestions] == [("q1", []), ("q2", ["q1"])]


def test_placeholders_imply_dependencies() -> None:
    plan = parse_decomposition(json.dumps({"subquestions": [sub("q1"), sub("q2", question="Where was {q1} born?")]}))
    assert plan.subquestions[1].depends_on == ["q1"]


def test_no_json_says_what_to_write() -> None:
    with pytest.raises(PlanError, match="no JSON found.*subquestions"):
        parse_decomposition("q1: who directed Jaws? q2: who is his spouse?")


def test_a_reply_cut_off_mid_json_is_reported_as_cut_off() -> None:
    text = json.dumps(TWO_HOPS)[:-30]  # max_tokens ran out; the first sub-question alone still decodes
    with pytest.raises(PlanError, match="malformed or cut off"):
        parse_decomposition(text)


def test_an_object_of_the_wrong_shape_names_its_keys() -> None:
    with pytest.raises(PlanError, match="no 'subquestions' list \\(keys: id, question\\)"):
        parse_decomposition('{"id": "q1", "question": "Who directed Jaws?"}')


@pytest.mark.parametrize(
    ("subs", "message"),
    [
        ([sub("q1"), sub("q1")], "duplicate ids q1"),
        ([sub("q1"), sub("q2", "q9")], r"q2 depends on q9, which is not a sub-question \(ids: q1, q2\)"),
        ([sub("q1", "q1")], "q1 depends on itself"),
        ([sub("q1", "q2"), sub("q2", "q1")], r"cycle \(q1 -> q2, q2 -> q1\)"),
        ([], "at least 1 item"),
        ([sub(f"q{i}") for i in range(1, 8)], "at most 6 items"),
        ([sub("q1", question="  ")], "sub-question text is empty"),
        ([sub("first")], "must be q1, q2"),
        ([{"id": "q1"}], r"subquestions\.0\.question: Field required"),
    ],
)
def test_invalid_plans_are_rejected_with_a_message_for_the_model(subs: list[dict], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_decomposition(json.dumps({"subquestions": subs}))


def test_topological_order_puts_dependencies_first_and_keeps_model_order_otherwise() -> None:
    subs = [SubQuestion(**s) for s in (sub("q1", "q3"), sub("q2"), sub("q3", "q2"), sub("q4"))]
    assert [s.id for s in topological_order(subs)] == ["q2", "q3", "q1", "q4"]


def test_a_cycle_has_no_order() -> None:
    subs = [SubQuestion(**s) for s in (sub("q1", "q3"), sub("q2", "q1"), sub("q3", "q2"))]
    with pytest.raises(ValueError, match="cycle"):
        topological_order(subs)


def test_decomposition_is_frozen_and_serialisable() -> None:
    plan = Decomposition.model_validate(TWO_HOPS)
    assert plan.model_dump() == TWO_HOPS
    with pytest.raises(ValueError):
        plan.subquestions[0].id = "q7"  # type: ignore[misc]


def test_substitute_fills_both_placeholder_forms_and_keeps_unknown_ones() -> None:
    text, used = substitute("Is #q1 older than {q2}, and #q10?", {"q1": "Spielberg", "q2": "Lucas"})
    assert (text, used) == ("Is Spielberg older than Lucas, and #q10?", ["q1", "q2"])
    assert placeholders("#q1 and {q12} and #q1x and #q1") == ["q1", "q12"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Steve Hillage", "Steve Hillage"),
        ("\n  Answer: Steve Hillage.\nbecause the passage says so", "Steve Hillage"),
        ('"Washington, D.C."', "Washington, D.C."),
        ("**1977**", "1977"),
        ("Final answer: Lake Superior", "Lake Superior"),
        ("", ""),
    ],
)
def test_short_answers_are_the_first_line_without_decoration(text: str, expected: str) -> None:
    assert parse_short_answer(text) == expected


@pytest.mark.parametrize(
    ("answer", "unanswerable"),
    [("UNANSWERABLE", True), ("", True), ("Insufficient information.", True), ("Miquette Giraudy", False)],
)
def test_unanswerable_detection(answer: str, unanswerable: bool) -> None:
    assert is_unanswerable(answer) is unanswerable


def test_passage_refs_take_titles_or_bracket_ids() -> None:
    observation = "[1] Green (album): Green is ...\n[2] Miquette Giraudy: born 1953\n[doc-7] no title here"
    assert passage_refs(observation) == ["Green (album)", "Miquette Giraudy", "doc-7"]
    assert passage_refs("Error: tool search failed: boom") == []


def test_renderers_for_prompts() -> None:
    assert render_history([]) == ""
    assert "Q: Who directed Jaws?\nA: Steven Spielberg" in render_history([["Who directed Jaws?", "Steven Spielberg"]])
    chain = [{"id": "q1", "query": "Who directed Jaws?", "answer": "Steven Spielberg"}]
    assert render_chain(chain) == "q1: Who directed Jaws? -> Steven Spielberg"
