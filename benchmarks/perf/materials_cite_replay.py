"""Citations of a finished materials bench run, before and after agents/materials_cite.cite settles the ids.

    python benchmarks/perf/materials_cite_replay.py RUN_DIR [--home HOME] [--json]

For each answered question about a record (comparisons aside: their answer is an id already) the recorded
answer and the tool observations of its trajectory are replayed through cite(): how many answers name the asked
record's id before and after, how many made-up ids are taken out, and whether the score changes. The model calls
are the recorded ones; only the final text is recomputed, so a run made before the graph cited this way shows
what the graph now does with the same replies.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from agentdistill.agents.materials_cite import MATERIAL_ID, cite
from agentdistill.benchmarks.materials_metric import materials_score
from agentdistill.config import Settings
from agentdistill.memory.trajectories import TrajectoryStore


def replay(run_dir: Path, store: TrajectoryStore) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        counts["items"] += 1
        counts["correct_before"] += bool(row["correct"])
        if not row.get("answer") or str(row["meta"].get("kind", "")).startswith("compare"):
            counts["correct_after"] += bool(row["correct"])
            continue
        run = store.get(row["run_id"])
        citation = cite(row["answer"], [s.observation or "" for s in run.steps if s.kind == "tool"], run.question)
        asked, before = row["meta"]["material_id"], set(MATERIAL_ID.findall(row["answer"]))
        record = row["meta"].get("kind") != "molar_mass"  # a molar mass is the formula's, not one record's
        counts["answered"] += 1
        counts["made_up_ids_removed"] += bool(citation.unverified)
        counts["correct_after"] += materials_score(citation.answer, row["gold"]).correct
        if record:
            counts["record_answers"] += 1
            counts["before_cites_asked"] += asked in before
            counts["after_cites_asked"] += asked in citation.sources
            counts["after_cites_other"] += bool(citation.sources) and asked not in citation.sources
            counts["after_cites_none"] += not citation.sources
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--home", type=Path, help="the home whose trajectory store holds the run (default: config)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings(home=args.home) if args.home else Settings()
    with TrajectoryStore.open(settings.trajectories_path) as store:
        counts = replay(args.run_dir, store)
    if args.json:
        print(json.dumps(counts, indent=2))
        return
    for key, value in counts.items():
        print(f"{key:<24}{value:>6}")


if __name__ == "__main__":
    main()
