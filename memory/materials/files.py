"""On-disk layout of a materials store: generations written in a temp dir and renamed, the CURRENT pointer.

    <directory>/CURRENT                 "gen-0002": switched atomically, the only pointer to live data
    <directory>/gen-0002/materials.db   records + scalar columns (db.py), read-only once written
    <directory>/gen-0002/index.faiss    one unit vector per record (its summary), id = the record's seq
    <directory>/gen-0002/manifest.json  counts, content hash, embedder
    <directory>/.lock                   flock held while a generation is written (the catalog's lock helper)

A generation is written completely (files fsynced, manifest last) in a `.tmp-*` directory, renamed to its
`gen-NNNN` name, and only then named by CURRENT; older generations are deleted after the switch. A build killed
at any moment leaves the previous store (or none) in place, and a stray `.tmp-*` directory is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import agentdistill.memory.materials.db as materials_db
from agentdistill.errors import AgentDistillError, StoreError
from agentdistill.memory import vector_index
from agentdistill.memory.embedders import Embedder, embedder_spec
from agentdistill.memory.materials.records import MaterialRecord
from agentdistill.memory.materials.summary import summary
from agentdistill.paths import atomic_write, fsync_dir

FORMAT_VERSION = 1
CURRENT, MANIFEST, DB_FILE, INDEX_FILE = "CURRENT", "manifest.json", "materials.db", "index.faiss"
GEN = re.compile(r"gen-(\d{4,})")
_TMP_PREFIX = ".tmp-"


class MaterialsStoreNotFound(StoreError):
    def __init__(self, directory: Path) -> None:
        super().__init__(
            f"no materials store in {directory}: build one with MaterialsStore.build(directory, records, embedder) "
            "(records from load_records(FILE)), or use default_materials_store(home, embedder) for the shipped sample."
        )
        self.directory = directory


class CorruptMaterialsStore(StoreError):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"materials store file {path} is damaged: {problem}. Delete the store directory and build it again "
            "(default_materials_store rebuilds the shipped sample by itself)."
        )
        self.path = path


class InvalidMaterialsStore(AgentDistillError):
    """Records that cannot form a store: none at all, or two with the same material_id."""


def write_generation(directory: Path, records: Sequence[MaterialRecord], embedder: Embedder) -> Path:
    """Write a complete generation, switch CURRENT to it, then delete the others. The caller holds the lock."""
    records = list(records)
    if not records:
        raise InvalidMaterialsStore("a materials store needs at least one record; the input had none")
    seen: dict[str, int] = {}
    for n, record in enumerate(records, start=1):
        if record.material_id in seen:
            raise InvalidMaterialsStore(
                f"material_id {record.material_id!r} appears twice (records {seen[record.material_id]} and {n}); "
                "ids must be unique: merge the two records or drop one"
            )
        seen[record.material_id] = n
    directory.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := GEN.fullmatch(p.name))]
    generation = directory / f"gen-{max(numbers, default=0) + 1:04d}"
    staging = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=directory))
    try:
        materials_db.create(staging / DB_FILE, records)
        _fsync_file(staging / DB_FILE)
        vectors = np.ascontiguousarray(embedder.encode([summary(r) for r in records]), dtype=np.float32)
        if vectors.shape != (len(records), embedder.dim):
            raise StoreError(f"embedder {embedder.name!r} returned {vectors.shape} vectors for {len(records)} texts")
        index = vector_index.new_flat(embedder.dim)
        index.add_with_ids(vectors, np.arange(len(records), dtype=np.int64))  # vector id = the record's seq
        vector_index.write(index, staging / INDEX_FILE)
        _fsync_file(staging / INDEX_FILE)
        manifest = {
            "format_version": FORMAT_VERSION,
            "records": len(records),
            "content_sha256": content_hash(records),
            "embedder": {"name": embedder.name, "dim": embedder.dim, "spec": embedder_spec(embedder)},
            "built": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with atomic_write(staging / MANIFEST) as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; readers of a shared home need to list the generation
        os.rename(staging, generation)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # CURRENT still names the previous generation
        raise
    with atomic_write(directory / CURRENT) as handle:
        handle.write(generation.name + "\n")
    for old in directory.iterdir():
        if old != generation and (GEN.fullmatch(old.name) or old.name.startswith(_TMP_PREFIX)):
            shutil.rmtree(old, ignore_errors=True)  # open readers keep their files (POSIX unlink semantics)
    fsync_dir(directory)
    return generation


def live_generation(directory: Path) -> Path:
    """The generation CURRENT names; MaterialsStoreNotFound / CorruptMaterialsStore when there is none."""
    current = directory / CURRENT
    if not current.is_file():
        raise MaterialsStoreNotFound(directory)
    name = current.read_text(encoding="utf-8").strip()
    generation = directory / name
    if not GEN.fullmatch(name) or not generation.is_dir():
        raise CorruptMaterialsStore(current, f"names {name!r}, which is not a generation directory here")
    return generation


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a generation, checked for the keys `open` relies on."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CorruptMaterialsStore(path, "the file is missing") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptMaterialsStore(path, f"not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not {"format_version", "records", "embedder"} <= manifest.keys():
        raise CorruptMaterialsStore(path, "not a materials store manifest")
    if not isinstance(manifest["format_version"], int) or manifest["format_version"] > FORMAT_VERSION:
        raise CorruptMaterialsStore(path, f"format {manifest['format_version']!r} is not one this agentdistill reads")
    return manifest


def content_hash(records: Sequence[MaterialRecord]) -> str:
    """sha256 over the records in order: two stores with the same hash hold the same data."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
