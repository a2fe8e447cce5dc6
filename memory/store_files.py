"""On-disk layout of a knowledge store: generations, the CURRENT pointer, the manifest, and the checks on load.

    <root>/<name>/CURRENT           "gen-0007\\n", replaced atomically: the only switch between generations
    <root>/<name>/gen-0007/         index.faiss (faiss.write_index), store.db (SQLite), manifest.json
    <root>/<name>/.lock             flock held while a generation is written or the store deleted

A generation is complete (files fsynced, manifest last) before CURRENT names it, and older ones are deleted only after
the switch, so a kill at any moment leaves CURRENT naming a whole generation. Leftover partial generations are removed
by the next save.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentdistill.errors import AgentDistillError, StoreError
from agentdistill.memory import vector_index
from agentdistill.paths import atomic_write, fsync_dir

FORMAT_VERSION = 1
CURRENT, MANIFEST, INDEX_FILE, DB_FILE, LOCK = "CURRENT", "manifest.json", "index.faiss", "store.db", ".lock"
_GEN = re.compile(r"gen-(\d{4,})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_OPEN_RETRIES = 3  # a concurrent save may delete the generation we just read from CURRENT; re-read it


class InvalidStoreName(AgentDistillError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"knowledge store name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


class StoreNotFound(StoreError):
    def __init__(self, name: str, root: Path, known: Sequence[str]) -> None:
        have = f" (stores here: {', '.join(known)})" if known else ""
        super().__init__(
            f"no knowledge store {name!r} under {root}{have}. "
            f"Build it with `agentdistill kb build {name} --from FILE` (JSONL or a folder of .txt/.md files)."
        )
        self.name = name


class CorruptStore(StoreError):
    """A store file is unreadable or disagrees with the manifest; the message names the file."""

    def __init__(self, path: Path, problem: str, *, name: str) -> None:
        super().__init__(
            f"knowledge store {name!r} is damaged: {path}: {problem}. "
            f"Rebuild it with `agentdistill kb build {name} --from FILE`."
        )
        self.path = path


class EmbedderMismatch(StoreError):
    def __init__(self, name: str, built_with: str, built_dim: int, given: str, given_dim: int) -> None:
        super().__init__(
            f"knowledge store {name!r} was built with embedder {built_with!r} ({built_dim}-d), but {given!r} "
            f"({given_dim}-d) was passed: its vectors are not comparable. Pass the embedder that built it "
            f"(or none, to use the recorded one), or rebuild: "
            f"`agentdistill kb build {name} --from FILE --embedder ...`."
        )
        self.built_with, self.given = built_with, given


class NewerFormat(StoreError):
    def __init__(self, path: Path, version: int) -> None:
        super().__init__(
            f"{path} has store format {version}, newer than this agentdistill reads ({FORMAT_VERSION}): upgrade it"
        )


class StoreChanged(StoreError):
    """Another writer saved the store after this change was read from it; nothing was written."""

    def __init__(self, directory: Path, based_on: str, current: str | None) -> None:
        super().__init__(
            f"store {directory.name!r} changed while this change was made: it was read at {based_on}, another writer"
            f" saved {current or 'a deletion'} since; nothing was written. Run the change again."
        )
        self.based_on, self.current = based_on, current


@dataclass(frozen=True)
class StoreInfo:
    """What `kb info` and `kb list` show; read from the manifest without loading the index."""

    name: str
    path: str
    generation: str | None
    documents: int
    chunks: int
    vectors: int
    dim: int
    embedder: str
    embedder_spec: str
    index_kind: str
    nlist: int | None
    nprobe: int | None
    chunk_size: int
    chunk_overlap: int
    size_bytes: int
    created: str
    saved: str | None

    @classmethod
    def from_manifest(cls, m: Mapping[str, Any], *, path: Path, generation: Path | None) -> StoreInfo:
        size = sum(f.stat().st_size for f in generation.iterdir() if f.is_file()) if generation else 0
        return cls(
            name=m["name"],
            path=str(path),
            generation=generation.name if generation else None,
            documents=m["documents"],
            chunks=m["chunks"],
            vectors=m["vectors"],
            dim=m["dim"],
            embedder=m["embedder"]["name"],
            embedder_spec=m["embedder"]["spec"],
            index_kind=m["index"]["kind"],
            nlist=m["index"].get("nlist"),
            nprobe=m["index"].get("nprobe"),
            chunk_size=m["config"]["chunk_size"],
            chunk_overlap=m["config"]["chunk_overlap"],
            size_bytes=size,
            created=m["created"],
            saved=m.get("saved"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedGeneration:
    manifest: dict[str, Any]
    index: Any
    db: sqlite3.Connection


def store_dir(root: str | Path, name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise InvalidStoreName(name)
    return Path(root) / name


def list_stores(root: str | Path) -> list[str]:
    """Names of the stores under `root` that have a CURRENT generation."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CURRENT).is_file() and _NAME.fullmatch(p.name))


def current_generation(directory: Path) -> Path:
    name = (directory / CURRENT).read_text(encoding="utf-8").strip()
    if not _GEN.fullmatch(name):
        raise CorruptStore(directory / CURRENT, f"names {name!r}, not a generation", name=directory.name)
    return directory / name


def read_manifest(gen: Path, *, name: str) -> dict[str, Any]:
    path = gen / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptStore(path, "is missing", name=name) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptStore(path, f"not valid JSON ({exc})", name=name) from exc
    if not isinstance(manifest, dict) or "format_version" not in manifest:
        raise CorruptStore(path, "not a knowledge store manifest", name=name)
    if manifest["format_version"] > FORMAT_VERSION:
        raise NewerFormat(path, manifest["format_version"])
    return manifest


def read_info(name: str, root: str | Path) -> StoreInfo:
    directory = _existing_dir(root, name)
    gen = current_generation(directory)
    manifest = read_manifest(gen, name=name)
    try:
        return StoreInfo.from_manifest(manifest, path=directory, generation=gen)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptStore(gen / MANIFEST, f"lacks or mangles a field ({exc!r})", name=name) from None


def load_generation(directory: Path, *, name: str, root: Path) -> LoadedGeneration:
    """Read CURRENT's generation and check it; retries when a concurrent save removes it mid-read."""
    _existing_dir(root, name)
    for attempt in range(_OPEN_RETRIES):
        gen = current_generation(directory)
        try:
            return _load(gen, name=name)
        except FileNotFoundError as exc:
            if attempt == _OPEN_RETRIES - 1 or current_generation(directory) == gen:
                raise CorruptStore(Path(exc.filename or gen), "file is missing", name=name) from exc
    raise AssertionError("unreachable")  # the loop returns or raises


def _load(gen: Path, *, name: str) -> LoadedGeneration:
    manifest = read_manifest(gen, name=name)
    for file, expected in manifest.get("files", {}).items():
        actual = (gen / file).stat().st_size
        if actual != expected:
            raise CorruptStore(gen / file, f"{actual} bytes, the manifest says {expected}", name=name)
    for file, expected in manifest.get("sha256", {}).items():  # stores saved before checksums have none
        if _sha256(gen / file) != expected:
            raise CorruptStore(gen / file, "its bytes changed since it was saved (sha256 differs)", name=name)
    index_path = gen / INDEX_FILE
    if not index_path.is_file():
        raise FileNotFoundError(2, "missing", str(index_path))
    try:
        index = vector_index.read(index_path)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:200]
        raise CorruptStore(index_path, f"FAISS cannot read it ({first})", name=name) from exc
    if index.ntotal != manifest["vectors"] or index.d != manifest["dim"]:
        raise CorruptStore(
            index_path,
            f"holds {index.ntotal} vectors of dim {index.d}, the manifest says {manifest['vectors']} of dim "
            f"{manifest['dim']}",
            name=name,
        )
    db_path = gen / DB_FILE
    if not db_path.is_file():
        raise FileNotFoundError(2, "missing", str(db_path))
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
    try:
        (chunks,) = db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        (documents,) = db.execute("SELECT COUNT(*) FROM documents").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise CorruptStore(db_path, f"SQLite cannot read it ({exc})", name=name) from exc
    if (chunks, documents) != (manifest["chunks"], manifest["documents"]) or chunks != index.ntotal:
        db.close()
        raise CorruptStore(
            db_path,
            f"has {documents} documents / {chunks} chunks, the manifest says {manifest['documents']} / "
            f"{manifest['chunks']} and the index holds {index.ntotal} vectors",
            name=name,
        )
    return LoadedGeneration(manifest, index, db)


def write_generation(
    directory: Path,
    manifest: Mapping[str, Any],
    *,
    write_index: Callable[[Path], None],
    write_db: Callable[[Path], None],
    based_on: str | None = None,
) -> Path:
    """Write a whole new generation, switch CURRENT to it, then remove the others. Returns its directory.

    `based_on` is the generation the change was read from: if another writer switched CURRENT since, the
    change would drop that writer's work, so StoreChanged is raised and nothing is written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        if based_on is not None:
            current = (directory / CURRENT).read_text().strip() if (directory / CURRENT).is_file() else None
            if current != based_on:
                raise StoreChanged(directory, based_on, current)
        gens = _generations(directory)
        gen = directory / f"gen-{(max(gens, default=0) + 1):04d}"
        gen.mkdir()
        write_index(gen / INDEX_FILE)
        write_db(gen / DB_FILE)
        for file in (INDEX_FILE, DB_FILE):
            _fsync_file(gen / file)
        full = {
            **manifest,
            "generation": gen.name,
            "saved": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {file: (gen / file).stat().st_size for file in (INDEX_FILE, DB_FILE)},
            "sha256": {file: _sha256(gen / file) for file in (INDEX_FILE, DB_FILE)},
        }
        with atomic_write(gen / MANIFEST) as handle:
            json.dump(full, handle, indent=2, sort_keys=True)
        fsync_dir(gen)
        with atomic_write(directory / CURRENT) as handle:
            handle.write(gen.name + "\n")
        for number in gens:  # only now is nothing pointing at them
            shutil.rmtree(directory / f"gen-{number:04d}", ignore_errors=True)
    return gen


def delete_store(name: str, root: str | Path) -> Path:
    """Remove the whole store directory; returns the path removed."""
    directory = _existing_dir(root, name, allow_partial=True)
    with _locked(directory):
        (directory / CURRENT).unlink(missing_ok=True)  # first, so a crash mid-delete never leaves a half store live
        fsync_dir(directory)
        for child in directory.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            elif child.name != LOCK:
                child.unlink()
    shutil.rmtree(directory)
    return directory


def _existing_dir(root: str | Path, name: str, *, allow_partial: bool = False) -> Path:
    directory = store_dir(root, name)
    if not (directory / CURRENT).is_file() and not (allow_partial and directory.is_dir()):
        raise StoreNotFound(name, Path(root), list_stores(root))
    return directory


def _generations(directory: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _GEN.fullmatch(p.name)) and p.is_dir())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One writer at a time per store; readers never lock (they only follow CURRENT)."""
    with open(directory / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
