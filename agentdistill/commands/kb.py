"""`agentdistill kb ...`: build, extend, search, inspect and delete knowledge stores under `<home>/kb`.

Rich tables for people, `--json` for scripts. Problems raise AgentDistillError subclasses; the main CLI prints them on
one line. Heavy imports (FAISS, sentence-transformers) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from agentdistill.commands.common import emit_json, settings
from agentdistill.errors import AgentDistillError


class BadFilter(AgentDistillError):
    pass


def kb_root() -> Path:
    """`<home>/kb` of the settings loaded by the top-level command (so `--home` and config apply)."""
    return settings(click.get_current_context()).kb_root


def _console() -> Console:
    return Console(file=sys.stdout, soft_wrap=False)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _parse_filters(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`field=value`; the value is read as JSON when it parses (numbers, true, lists), else taken as a string."""
    filters: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise BadFilter(f"filter {pair!r} must look like FIELD=VALUE, e.g. --filter source=hotpotqa")
        try:
            filters[name] = json.loads(raw)
        except json.JSONDecodeError:
            filters[name] = raw
    return filters


def _config(chunk_size: int | None, overlap: int | None, index: str | None) -> Any:
    from agentdistill.memory.knowledge_types import KnowledgeConfig

    base = KnowledgeConfig()
    return KnowledgeConfig(
        chunk_size=base.chunk_size if chunk_size is None else chunk_size,
        chunk_overlap=base.chunk_overlap if overlap is None else overlap,
        index=index or base.index,
    )


@click.group("kb")
def kb() -> None:
    """Knowledge stores: FAISS vectors + SQLite texts, searched by the retrieval tools."""


@kb.command("build")
@click.argument("name")
@click.option("--from", "source", type=click.Path(path_type=Path), help="JSONL file or folder of .txt/.md files.")
@click.option("--sample", is_flag=True, help="Use the shipped sample knowledge base (HotpotQA passages).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Words per chunk (default 150).")
@click.option(
    "--overlap", type=click.IntRange(min=0), default=None, help="Words shared by neighbouring chunks (default 30)."
)
@click.option("--index", type=click.Choice(["auto", "flat", "ivf"]), default=None, help="Index kind (default auto).")
@click.option("--embedder", default=None, help="Local sentence-transformers dir, `minilm` (default) or `hashing:DIM`.")
@click.option("--json", "as_json", is_flag=True, help="Print the store info as JSON.")
def build(
    name: str,
    source: Path | None,
    sample: bool,
    chunk_size: int | None,
    overlap: int | None,
    index: str | None,
    embedder: str | None,
    as_json: bool,
) -> None:
    """Build store NAME from a file or folder, replacing any store of that name atomically."""
    from agentdistill.memory.knowledge_bases import build_store, sample_kb_path

    if (source is None) == (not sample):
        raise click.UsageError("pass exactly one of --from FILE|DIR or --sample")
    path = sample_kb_path() if sample else source
    store = build_store(
        name,
        kb_root(),
        path,
        embedder=embedder,
        config=_config(chunk_size, overlap, index),
        progress=None if not as_json else False,
    )
    _show_info(store.info().to_dict(), as_json, title=f"built {name} from {path}")


@kb.command("add")
@click.argument("name")
@click.option("--from", "source", required=True, type=click.Path(path_type=Path), help="JSONL file or folder.")
@click.option("--upsert", is_flag=True, help="Replace documents whose ids already exist instead of failing.")
@click.option("--embedder", default=None, help="The embedder the store was built with (default: the recorded one).")
@click.option("--json", "as_json", is_flag=True)
def add(name: str, source: Path, upsert: bool, embedder: str | None, as_json: bool) -> None:
    """Add documents to store NAME (same chunking and embedder as its build) and save a new generation."""
    from agentdistill.memory.documents import load_documents
    from agentdistill.memory.knowledge_bases import add_documents

    docs = load_documents(source)
    store, chunks = add_documents(name, kb_root(), docs, upsert=upsert, embedder=embedder,
                                  progress=None if not as_json else False)  # fmt: skip
    info = store.info().to_dict()
    if as_json:
        emit_json({"added_documents": len(docs), "added_chunks": chunks, "store": info})
    else:
        click.echo(f"added {len(docs)} documents ({chunks} chunks) to {name}: now {info['documents']} documents")


@kb.command("search")
@click.argument("name")
@click.argument("query")
@click.option("-k", "--k", "k", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE", help="Only documents with this metadata.")
@click.option("--embedder", default=None, help="The embedder the store was built with (default: the recorded one).")
@click.option("--json", "as_json", is_flag=True)
def search(name: str, query: str, k: int, filters: tuple[str, ...], embedder: str | None, as_json: bool) -> None:
    """Show the K passages of NAME closest to QUERY."""
    from agentdistill.memory.knowledge_bases import open_store

    store = open_store(name, kb_root(), embedder=embedder)
    hits = store.search(query, k=k, filters=_parse_filters(filters))
    if as_json:
        emit_json([h.to_dict() for h in hits])
        return
    table = Table(title=f"{name}: {query}", show_lines=True)
    for column, style in (("score", "cyan"), ("id", "green"), ("title", "bold"), ("text", "")):
        table.add_column(column, style=style, overflow="fold")
    for hit in hits:
        text = hit.text if len(hit.text) <= 300 else hit.text[:297] + "..."
        table.add_row(f"{hit.score:.3f}", hit.id, hit.title, text)
    _console().print(table if hits else "no results")


@kb.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def info(name: str, as_json: bool) -> None:
    """Counts, dimension, embedder, index kind and size on disk of store NAME."""
    from agentdistill.memory.store_files import read_info

    _show_info(read_info(name, kb_root()).to_dict(), as_json, title=name)


@kb.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """All stores under the home's kb folder."""
    from agentdistill.errors import StoreError
    from agentdistill.memory.store_files import list_stores, read_info

    rows: list[dict[str, Any]] = []
    for name in list_stores(kb_root()):
        try:
            rows.append(read_info(name, kb_root()).to_dict())
        except StoreError as exc:  # one damaged store must not hide the others
            rows.append({"name": name, "problem": str(exc)})
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no knowledge stores under {kb_root()}; build one with `agentdistill kb build NAME --from FILE`")
        return
    table = Table(title=f"knowledge stores in {kb_root()}")
    for column in ("name", "documents", "chunks", "embedder", "index", "size", "saved"):
        table.add_column(column)
    for row in rows:
        if "problem" in row:
            table.add_row(row["name"], "[red]damaged[/red]", "", "", "", "", "")
            continue
        table.add_row(
            row["name"],
            str(row["documents"]),
            str(row["chunks"]),
            row["embedder"],
            row["index_kind"],
            _size(row["size_bytes"]),
            row["saved"] or "",
        )
    _console().print(table)
    for row in rows:
        if "problem" in row:
            click.echo(f"{row['name']}: {row['problem']}", err=True)


@kb.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete store NAME and all its files."""
    from agentdistill.memory.store_files import delete_store, store_dir

    if not yes:
        click.confirm(f"delete knowledge store {name!r} at {store_dir(kb_root(), name)}?", abort=True)
    path = delete_store(name, kb_root())
    click.echo(f"deleted {name} ({path})")


def _show_info(data: dict[str, Any], as_json: bool, *, title: str) -> None:
    if as_json:
        emit_json(data)
        return
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        shown = _size(value) if key == "size_bytes" else ("" if value is None else str(value))
        table.add_row(key, shown)
    _console().print(table)
