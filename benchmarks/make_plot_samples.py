"""Render every report plot at n=3 and at n=200 items, to look at them (benchmarks/figures/report-plots/).

Usage: python -m agentdistill.benchmarks.make_plot_samples OUT_DIR

The runs are shaped like the GSM8K 135M distillation (a teacher near 47%, students near 0-4%, free local
models), the cases that used to break the plots: a 0% bar, a zero cost axis, close points, long labels.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from agentdistill.benchmarks import plots
from agentdistill.benchmarks.report_stats import wilson_interval

RUNS = (  # label, accuracy, tokens per item, median latency
    ("teacher local:qwen2.5-coder-1.5b", 0.47, 1641, 29.2),
    ("base-student local:smollm2-135m", 0.0, 6628, 34.5),
    ("student runs/distill-gsm-135m-full", 0.03, 2385, 9.7),
    ("student-lora-r64", 0.04, 1987, 7.4),
)


def render(out: Path, n: int) -> list[Path]:
    points = []
    for label, accuracy, tokens, latency in RUNS:
        correct = round(accuracy * n)
        points.append(plots.RunPoint(label, correct / n, wilson_interval(correct, n), tokens, latency, 0.0))
    groups = {"all items": points, "comparison": points, "bridge": points}
    rnd = random.Random(0)
    right = [rnd.randint(1, 4) for _ in range(round(n * 0.47))]
    wrong = [rnd.randint(1, 6) for _ in range(n - len(right))]
    paired = {"both_right": n // 4, "only_a": n // 5, "only_b": 1, "both_wrong": n - n // 4 - n // 5 - 1}
    return [
        plots.accuracy_bars(out / f"accuracy-{n}.png", groups, title="Accuracy: distill-gsm-135m-full"),
        plots.tradeoff_scatter(out / f"tradeoffs-{n}.png", points, title="Accuracy vs tokens, latency, cost"),
        plots.steps_histogram(out / f"steps-{n}.png", right, wrong, title="Model calls per item: codeact"),
        plots.paired_outcomes(out / f"paired-{n}.png", paired, labels=(RUNS[0][0], RUNS[2][0]), p_value=8.2e-12),
    ]


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "benchmarks/figures/report-plots")
    out.mkdir(parents=True, exist_ok=True)
    for n in (3, 200):
        for path in render(out, n):
            print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
