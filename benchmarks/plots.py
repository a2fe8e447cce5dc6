"""PNG plots for benchmark reports: accuracy bars, accuracy-vs-cost trade-offs, step histograms, paired outcomes.

Each function takes plain numbers (no run directories), draws one figure on the Agg canvas and writes it
atomically. pyplot is never imported: it keeps global figure state and may pick an interactive backend,
and reports run inside servers and CI where no window may ever open.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from agentdistill.paths import atomic_write

_CORRECT, _WRONG = "#2a9d8f", "#e76f51"
_PALETTE = ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8ab17d", "#6d597a", "#b56576")


@dataclass(frozen=True)
class RunPoint:
    """One run as the plots see it; None where a figure is unknown (e.g. no finished items)."""

    label: str  # the run's name in legends and axis ticks
    accuracy: float | None  # fraction of items right, 0..1
    ci95: tuple[float, float] | None  # Wilson 95% interval on accuracy
    tokens_mean: float | None  # prompt + completion tokens per item
    latency_p50_s: float | None  # median seconds per item
    cost_per_item_usd: float | None  # total cost / items: comparable across runs of different size


def accuracy_bars(path: Path, groups: Mapping[str, Sequence[RunPoint]], *, title: str = "Accuracy") -> Path:
    """Accuracy per group of items, one bar per run in each group, with 95% intervals as error bars.

    The intervals are there so a gap inside the noise of 50 items does not read as a win.
    `groups` maps a group name ("all items", a question type, ...) to one point per run, same run order in each.
    """
    names = list(groups)
    n_runs = max((len(points) for points in groups.values()), default=0)
    fig, ax = _figure(max(4.5, 0.9 * len(names) * max(n_runs, 1) + 2.5), 3.8)
    width = 0.8 / max(n_runs, 1)
    annotate = len(names) * n_runs <= 16  # more labels than that overlap into noise
    for i in range(n_runs):
        points = [groups[name][i] for name in names]
        xs = [g - 0.4 + width * (i + 0.5) for g in range(len(names))]
        # A run that got nothing right still shows its colour: a zero-height bar would vanish.
        heights = [0.0 if p.accuracy is None else max(p.accuracy, 0.006) for p in points]
        ax.bar(xs, heights, width * 0.92, label=points[0].label, color=_PALETTE[i % len(_PALETTE)])
        for x, point in zip(xs, points, strict=True):
            top = point.accuracy or 0.0
            if point.accuracy is not None and point.ci95 is not None:
                lo, hi = point.ci95
                ax.errorbar(x, point.accuracy, yerr=[[point.accuracy - lo], [hi - point.accuracy]], color="black",
                            capsize=4, linewidth=1)  # fmt: skip
                top = hi
            if annotate:  # above the interval, where no bar or whisker can hide it
                text = "n/a" if point.accuracy is None else f"{point.accuracy:.0%}"
                ax.annotate(text, (x, top), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=15 if len(names) > 3 else 0)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy (95% Wilson interval)")
    if n_runs > 1:  # beneath the axes: inside, it covers the bars of whichever group it lands on
        fig.legend(fontsize=8, loc="outside lower center", ncols=min(n_runs, 3))
    ax.set_title(title)
    return _save(fig, path)


def tradeoff_scatter(path: Path, runs: Sequence[RunPoint], *, title: str = "Accuracy vs cost of answering") -> Path:
    """Accuracy against tokens, latency and cost per item: one labelled point per run on each panel.

    Up and to the left is better; this is the view that shows what a student gives up against its teacher.
    """
    panels = (
        ("tokens_mean", "mean tokens per item"),
        ("latency_p50_s", "median latency per item (s)"),
        ("cost_per_item_usd", "cost per item (USD)"),
    )
    fig = Figure(figsize=(12.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True)
    colours = [_PALETTE[i % len(_PALETTE)] for i in range(len(runs))]
    for ax, (field, xlabel) in zip(axes, panels, strict=True):
        xs = []
        for run, colour in zip(runs, colours, strict=True):
            x = getattr(run, field)
            if x is None or run.accuracy is None:
                continue
            xs.append(x)
            yerr = None
            if run.ci95 is not None:
                yerr = [[run.accuracy - run.ci95[0]], [run.ci95[1] - run.accuracy]]
            ax.errorbar([x], [run.accuracy], yerr=yerr, fmt="o", capsize=4, markersize=7, color=colour, label=run.label)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # cost ticks like 0.00012 overlap at the default density
        ax.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.margins(x=0.25)
        if xs and min(xs) == max(xs):  # one value (a free local model's cost): no axis of made-up negatives
            ax.set_xticks([xs[0]])
            ax.set_xlim(xs[0] - 1, xs[0] + 1) if xs[0] else ax.set_xlim(-0.5, 0.5)
            ax.set_xlabel(f"{xlabel}: {_tick(xs[0])} for every run")
    axes[0].set_ylabel("accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # a panel with data the first lacks (latency without tokens) adds its runs
        more = ax.get_legend_handles_labels()
        handles += [h for h, label in zip(*more, strict=True) if label not in labels]
        labels += [label for label in more[1] if label not in labels]
    if handles:  # a legend, not labels at the points: close points' labels overprint each other
        fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=min(len(labels), 4))
    axes[0].set_ylabel("accuracy")
    fig.suptitle(title)
    return _save(fig, path)


def steps_histogram(path: Path, correct_steps: Sequence[int], wrong_steps: Sequence[int], *, title: str) -> Path:
    """Model calls per item, right and wrong answers stacked: shows whether failures are runaway loops."""
    fig, ax = _figure(6.0, 3.6)
    top = max([*correct_steps, *wrong_steps, 1])
    bins = [b - 0.5 for b in range(0, top + 2)]  # one bar per whole step count
    ax.hist(
        [list(correct_steps), list(wrong_steps)],
        bins=bins,
        stacked=True,
        color=[_CORRECT, _WRONG],
        label=[f"correct ({len(correct_steps)})", f"wrong ({len(wrong_steps)})"],
    )
    ax.set_xlabel("model calls per item")
    ax.set_ylabel("items")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no tick at 0.5 steps or 1.25 items
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.5, top + 0.5)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)


def paired_outcomes(path: Path, counts: Mapping[str, int], *, labels: tuple[str, str], p_value: float) -> Path:
    """The 2x2 of two runs on the same items: where they disagree matters, not only how many each got right."""
    a, b = labels
    names = ["both right", *(textwrap.fill(f"only {label}", 28) for label in (a, b)), "both wrong"]
    keys = ["both_right", "only_a", "only_b", "both_wrong"]
    fig, ax = _figure(7.0, 3.6)
    values = [counts.get(k, 0) for k in keys]
    ax.barh(names[::-1], values[::-1], color=[_WRONG, "#8ab17d", "#e9c46a", _CORRECT])
    for y, v in enumerate(values[::-1]):
        ax.annotate(str(v), (v, y), xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_xlabel("items")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.15)
    ax.set_title(f"Paired outcomes on {sum(values)} shared items\nMcNemar exact p = {p_value:.3g}")
    return _save(fig, path)


def _tick(value: float, _pos: int | None = None) -> str:
    """1,040 tokens, 5.2 s, 0.00192 USD: whole numbers for big values, 3 significant digits for small."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _figure(width: float, height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # attaches the raster canvas; no GUI backend is ever consulted
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    """Render to a temp file beside `path`, then rename: a reader never sees half a PNG."""
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    return path
