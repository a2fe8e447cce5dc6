"""The records store a `materials` suite's agent searches: built from the suite's own file, cached by content.

The questions are generated from the same records (suites/materials_questions.py), so every answer is in the
store. It is cached under `<home>/materials/suites/<suite>-<hash12>`, the hash covering the file's bytes and the
embedder spec: a second run reuses it, and an edited file or another embedder gives a new one.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agentdistill.benchmarks.suites.kb_cache import normalized_embedder
from agentdistill.benchmarks.suites.registry import suite_path
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.errors import AgentDistillError

if TYPE_CHECKING:
    from agentdistill.memory.materials import MaterialsStore

_HASH_VERSION = "suite-materials-1"  # bump when what goes into a suite's store changes


def store_name(suite: Suite, path: Path, embedder: str | None) -> str:
    digest = hashlib.sha256(f"{_HASH_VERSION}\n{normalized_embedder(embedder)}\n".encode())
    digest.update(path.read_bytes())
    return f"{suite.name[:50]}-{digest.hexdigest()[:12]}"


def suite_materials(
    suite: Suite, data_dir: Path | None, home: Path, embedder: str | None = None, device: str | None = None
) -> MaterialsStore | None:
    """The store for a records suite (built on first use); None for every other suite."""
    if suite.kb != "records":
        return None
    # imported here: only materials suites need pymatgen, SQLite and FAISS for records
    from agentdistill.memory.embedders import make_embedder
    from agentdistill.memory.materials import MaterialsStore, load_records

    path = suite_path(suite, data_dir)
    directory = Path(home) / "materials" / "suites" / store_name(suite, path, embedder)
    try:
        return MaterialsStore.open(directory)
    except AgentDistillError:  # missing, or left half-built by a crash: building again replaces it
        pass
    records = load_records(path, missing_formula="skip")
    print(f"building the materials store for suite {suite.name!r} ({len(records)} records) in {directory}...",
          file=sys.stderr)  # fmt: skip
    return MaterialsStore.build(directory, records, make_embedder(embedder, device=device))
