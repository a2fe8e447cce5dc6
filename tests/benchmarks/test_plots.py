"""What each report plot shows, read back from the matplotlib figure it saves (and the PNG it writes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from agentdistill.benchmarks import plots
from agentdistill.benchmarks.report_stats import wilson_interval


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    figures: list[Figure] = []
    real = plots._save

    def keep(fig: Figure, path: Path) -> Path:
        figures.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def point(label: str, correct: int, n: int, cost: float = 0.0) -> plots.RunPoint:
    return plots.RunPoint(label, correct / n, wilson_interval(correct, n), 1500.0 + 10 * correct, 7.0, cost)


RUNS = [point("teacher local:qwen2.5-coder-1.5b", 47, 100), point("base-student", 0, 100), point("student", 4, 100)]


def test_a_run_at_zero_accuracy_keeps_a_visible_bar_and_its_label(tmp_path: Path, saved: list[Figure]) -> None:
    path = plots.accuracy_bars(tmp_path / "a.png", {"all items": RUNS})
    assert path.read_bytes()[:4] == b"\x89PNG"
    [ax] = saved[0].axes
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 3 and min(heights) > 0  # the 0% run's colour is on the chart
    labels = {t.get_text(): t.xy[1] for t in ax.texts}
    assert labels["0%"] == pytest.approx(wilson_interval(0, 100)[1])  # written above its interval, not hidden
    assert [t.get_text() for t in saved[0].legends[0].get_texts()] == [r.label for r in RUNS]


def test_counts_get_whole_number_ticks(tmp_path: Path, saved: list[Figure]) -> None:
    plots.steps_histogram(tmp_path / "s.png", [2, 2], [3], title="steps")
    plots.paired_outcomes(tmp_path / "p.png", {"only_b": 1, "both_wrong": 2}, labels=("a", "b"), p_value=1.0)
    for fig, axis in ((saved[0], "x"), (saved[0], "y"), (saved[1], "x")):
        ax = fig.axes[0]
        lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
        ticks = [t for t in (ax.get_xticks() if axis == "x" else ax.get_yticks()) if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), (axis, ticks)


def test_a_cost_every_run_shares_is_one_tick_not_an_axis_of_negatives(tmp_path: Path, saved: list[Figure]) -> None:
    plots.tradeoff_scatter(tmp_path / "t.png", RUNS)
    tokens, _latency, cost = saved[0].axes
    assert list(cost.get_xticks()) == [0.0] and "0 for every run" in cost.get_xlabel()
    assert not tokens.texts and not cost.texts  # runs are told apart by a legend, not overprinting labels
    assert [t.get_text() for t in saved[0].legends[0].get_texts()] == [r.label for r in RUNS]


def test_the_paired_title_fits_its_figure(tmp_path: Path, saved: list[Figure]) -> None:
    long = ("teacher local:qwen2.5-coder-1.5b", "student runs/distill-gsm-135m-full")
    plots.paired_outcomes(tmp_path / "p.png", {"both_right": 1, "only_a": 40}, labels=long, p_value=8.2e-12)
    fig = saved[0]
    fig.canvas.draw()  # runs the constrained layout, as saving did
    renderer = fig.canvas.get_renderer()
    box, frame = fig.axes[0].title.get_window_extent(renderer), fig.bbox
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1
    assert all(label.get_window_extent(renderer).x0 >= frame.x0 for label in fig.axes[0].get_yticklabels())
