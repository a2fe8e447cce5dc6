"""Recommendation metric arithmetic: parse agreement, violations, per-session figures and run aggregates."""

from __future__ import annotations

import pytest

from agentdistill.benchmarks.results import ItemResult
from agentdistill.benchmarks.suites.rec_episode import EpisodeResult, TurnRecord
from agentdistill.benchmarks.suites.rec_metrics import (
    field_agreement,
    hit_at_k,
    parse_accuracy,
    rec_rows,
    rec_summary,
    violation_count,
)
from agentdistill.memory.catalog import Catalog, CatalogQuery


def test_field_agreement_is_jaccard_for_sets_and_equality_for_numbers() -> None:
    stated = CatalogQuery(types=("Movie",), genres=("Comedies", "Dramas"), year_max=2005)
    parsed = CatalogQuery(types=("movie",), genres=("Comedies",), year_max=2004, ratings=("R",))
    agreement = field_agreement(stated, parsed)
    assert agreement == {"types": 1.0, "genres": 0.5, "year_max": 0.0, "ratings": 0.0}  # an invented field counts
    assert parse_accuracy(stated, parsed) == pytest.approx(1.5 / 4)
    assert parse_accuracy(stated, stated) == 1.0
    assert parse_accuracy(CatalogQuery(), CatalogQuery()) == 1.0  # nothing said, nothing invented
    assert parse_accuracy(CatalogQuery(), CatalogQuery(exclude_ids=("s1",))) == 1.0  # bookkeeping is not a wish


def test_violations_count_unknown_ids_and_hits_look_at_the_top_k(catalog: Catalog) -> None:
    query = CatalogQuery(types=("TV Show",))
    show, movie = catalog.filter(query, limit=1)[0], catalog.filter(CatalogQuery(types=("Movie",)), limit=1)[0]
    assert violation_count(query, [show, movie, None]) == 2
    assert hit_at_k(["a", "b", "c"], "c", 3) and not hit_at_k(["a", "b", "c"], "c", 2)


def turn(n: int, *, hit: bool = False, shown: int = 5, violating: int = 0, parse: float = 1.0) -> TurnRecord:
    return TurnRecord(
        turn=n, user=f"message {n}", act="open" if n == 1 else "correct", run_id=f"r{n}", status="ok", answer="ok",
        recommended=tuple(f"s{i}" for i in range(shown)), titles=tuple("t" for _ in range(shown)), hit=hit,
        violating=violating, stated_violating=min(violating, 1), parse_accuracy=parse, clarification=False, steps=3,
        tool_calls=4, prompt_tokens=100, completion_tokens=10, latency_s=0.5,
    )  # fmt: skip


def test_an_episode_reports_hit_turn_rates_and_hit_by_turn() -> None:
    episode = EpisodeResult("rec-1", "s9", (turn(1, violating=2, parse=0.5), turn(2, hit=True)), max_turns=4)
    assert episode.hits == (False, True) and episode.hit and episode.hit_turn == 2
    metrics = episode.metrics()
    assert metrics["violation_rate"] == pytest.approx(2 / 10) and metrics["stated_violation_rate"] == pytest.approx(0.1)
    assert metrics["parse_accuracy"] == pytest.approx(0.75) and metrics["turns"] == 2 and metrics["recommended"] == 10
    assert [metrics[f"hit_by_t{t}"] for t in (1, 2, 3, 4)] == [0.0, 1.0, 1.0, 1.0]
    outcome = episode.outcome()
    assert outcome.correct and outcome.run_ids == ("r1", "r2") and outcome.prompt_tokens == 200 and outcome.steps == 6
    assert [t["turn"] for t in outcome.meta["transcript"]] == [1, 2]
    missed = EpisodeResult("rec-2", "s9", (turn(1), turn(2)), max_turns=2).metrics()
    assert missed["hit"] == 0.0 and missed["hit_turn"] == 0.0 and missed["hit_by_t2"] == 0.0


def result(item_id: str, metrics: dict[str, float], status: str = "ok") -> ItemResult:
    return ItemResult(item_id, status, bool(metrics.get("hit")), metrics, "a", ("s9",), None)  # type: ignore[arg-type]


def test_the_run_summary_pools_violations_and_counts_failed_sessions_as_misses() -> None:
    first = EpisodeResult("a", "s9", (turn(1, violating=4), turn(2, hit=True)), max_turns=3).metrics()
    second = EpisodeResult("b", "s9", (turn(1), turn(2), turn(3, hit=True, shown=2)), max_turns=3).metrics()
    third = EpisodeResult("c", "s9", (turn(1, shown=0, parse=0.0),), max_turns=3).metrics()
    crashed = {"em": 0.0, "f1": 0.0}  # what the runner writes for an error or timeout
    summary = rec_summary([result("a", first), result("b", second), result("c", third), result("d", crashed, "error")])
    assert summary["hit_at_k"] == pytest.approx(2 / 4)
    assert summary["turns_to_hit"] == pytest.approx(2.5)  # over the sessions with a hit
    assert summary["violation_rate"] == pytest.approx(4 / 22)  # pooled over every title recommended
    assert summary["parse_accuracy"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert summary["hit_by_turn"] == {"1": 0.0, "2": 0.25, "3": 0.5}
    labels = dict(rec_rows(summary))
    assert labels["hit@k"] == "50.0%" and labels["turns to hit"] == "2.50"
    assert rec_summary([result("q", {"em": 1.0, "f1": 1.0})]) == {}  # not a recommendation run


def test_the_request_set_has_no_hit_rate() -> None:
    answered = {"recommended": 5.0, "violating": 1.0, "violation_rate": 0.2, "answered": 1.0, "clarifications": 0.0}
    summary = rec_summary(
        [result("r1", answered), result("r2", {**answered, "answered": 0.0, "recommended": 0.0, "violating": 0.0})]
    )
    assert summary["hit_at_k"] is None and summary["turns_to_hit"] is None
    assert summary["violation_rate"] == pytest.approx(1 / 5) and summary["answered"] == 0.5
    assert dict(rec_rows(summary))["hit@k"] == "—"
