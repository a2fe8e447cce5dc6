"""Regenerate the shipped Netflix catalog subset from the shared file (reproducible: same input, same bytes).

    python -m agentdistill.benchmarks.make_netflix_catalog --shared ../shared/data

Reads recommendation/netflix_titles.jsonl (all 8807 Kaggle "Netflix Movies and TV Shows" rows, CC0) through the
ordinary importer, moves the three runtimes the source put in the rating column back into place, and keeps SIZE
titles: first enough of every genre and of every country with many titles that the vocabulary stays covered,
then the rest in a seeded hash order, so the mix of types, genres and years follows the full file. Writes
agentdistill/data/netflix_catalog.jsonl (CatalogItem.to_dict per line, in the source's order).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from agentdistill.memory.catalog import CatalogItem, import_catalog
from agentdistill.paths import atomic_write

SIZE = 1500  # titles shipped: ~1 MB, embeds in well under a minute on a laptop CPU
SEED = "netflix-catalog-v1"  # changing it changes which titles are shipped
GENRE_FLOOR = 12  # titles kept per genre (or all of a rarer genre): every genre filter has something to find
COUNTRY_MIN, COUNTRY_FLOOR = 20, 8  # countries with at least COUNTRY_MIN titles keep COUNTRY_FLOOR of them
DATA_DIR = Path(__file__).resolve().parents[1] / "agentdistill" / "data"
_RUNTIME = re.compile(r"(\d+) min")


def clean(item: CatalogItem) -> CatalogItem:
    """Three source rows carry their runtime in the rating column ('74 min') and no duration: move it."""
    match = _RUNTIME.fullmatch(item.rating)
    if match and item.duration_min is None and item.type == "Movie":
        return replace(item, rating="", duration_min=int(match.group(1)))
    return item


def _order(item: CatalogItem) -> str:
    return hashlib.sha256(f"{SEED}:{item.id}".encode()).hexdigest()


def select(items: Sequence[CatalogItem], size: int = SIZE) -> list[CatalogItem]:
    """`size` items covering every genre and the common countries, then filled in seeded hash order."""
    shuffled = sorted(items, key=_order)
    chosen: dict[str, CatalogItem] = {}
    country_counts = Counter(c for item in items for c in item.countries)
    floors = [("genres", g, GENRE_FLOOR) for g in sorted({g for item in items for g in item.genres})]
    floors += [("countries", c, COUNTRY_FLOOR) for c, n in sorted(country_counts.items()) if n >= COUNTRY_MIN]
    for attribute, value, floor in floors:
        have = sum(value in getattr(item, attribute) for item in chosen.values())
        for item in shuffled:
            if have >= floor:
                break
            if item.id not in chosen and value in getattr(item, attribute):
                chosen[item.id] = item
                have += 1
    for item in shuffled:
        if len(chosen) >= size:
            break
        chosen.setdefault(item.id, item)
    position = {item.id: n for n, item in enumerate(items)}
    return sorted(chosen.values(), key=lambda item: position[item.id])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--out", type=Path, default=DATA_DIR / "netflix_catalog.jsonl")
    args = parser.parse_args(argv)
    source = args.shared / "recommendation" / "netflix_titles.jsonl"
    items = [clean(item) for item in import_catalog(source, {"countries": "country"})]
    kept = select(items, args.size)
    with atomic_write(args.out) as handle:
        for item in kept:
            handle.write(json.dumps(item.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
    types = Counter(item.type for item in kept)
    genres = len({g for item in kept for g in item.genres})
    print(
        f"{len(kept)} of {len(items)} titles ({dict(types)}, {genres} genres) from {source} -> {args.out} "
        f"({args.out.stat().st_size / 1e3:.0f} kB)"
    )


if __name__ == "__main__":
    main()
