"""Regenerate the shipped sample knowledge base from the shared HotpotQA file (reproducible: same input, same bytes).

    python -m agentdistill.benchmarks.make_sample_kb --shared ../shared/data

Takes the first ITEMS questions of hotpotqa/dev_shared.jsonl (its order is a fixed seeded shuffle), writes every
context paragraph once (deduplicated by title) to agentdistill/data/sample_kb.jsonl, and the questions to
sample_questions.jsonl. HotpotQA is CC BY-SA 4.0, and so are the files written here (see SAMPLE_KB_LICENSE.md).
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentdistill.paths import atomic_write

ITEMS = 48  # questions; about ten paragraphs each, ~450 passages, well under 1 MB
DATA_DIR = Path(__file__).resolve().parents[1] / "agentdistill" / "data"


def slug(title: str) -> str:
    """Stable ASCII ids: 'Battle of Manila (1574)' -> 'battle-of-manila-1574'."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-") or "passage"


def sample_kb(items: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(passages, questions) for the given HotpotQA items; passage ids are unique slugs of their titles."""
    passages: dict[str, dict[str, Any]] = {}
    used_ids: set[str] = set()
    for item in items:
        for title, sentences in item["context"]:
            if title in passages:
                continue
            base = doc_id = slug(title)
            n = 2
            while doc_id in used_ids:
                doc_id, n = f"{base}-{n}", n + 1
            used_ids.add(doc_id)
            text = "".join(sentences).strip()
            passages[title] = {
                "id": doc_id,
                "title": title,
                "text": text,
                "source": "hotpotqa",
                "question_id": item["id"],
            }
    questions = [
        {
            "id": item["id"],
            "question": item["question"],
            "answer": item["answer"],
            "type": item["type"],
            "supporting_titles": item["supporting_titles"],
        }
        for item in items
    ]
    return list(passages.values()), questions


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    source = args.shared / "hotpotqa" / "dev_shared.jsonl"
    with source.open(encoding="utf-8") as handle:
        items = [json.loads(line) for _, line in zip(range(args.items), handle, strict=False)]
    passages, questions = sample_kb(items)
    write_jsonl(args.out / "sample_kb.jsonl", passages)
    write_jsonl(args.out / "sample_questions.jsonl", questions)
    size = sum((args.out / f).stat().st_size for f in ("sample_kb.jsonl", "sample_questions.jsonl"))
    print(f"{len(passages)} passages, {len(questions)} questions from {source} -> {args.out} ({size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
