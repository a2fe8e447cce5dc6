"""`agentdistill catalog ...`: build, import, inspect, search and filter recommendation catalogs.

Without `--catalog DIR` every command uses the shipped Netflix subset, built on first use into
`<home>/catalogs/`. Heavy imports (FAISS, sentence-transformers) happen inside the commands so `--help` is fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentdistill.commands.common import emit_json, settings, table

if TYPE_CHECKING:
    from agentdistill.memory.catalog import Catalog, CatalogItem, CatalogQuery

# CatalogQuery list field -> the singular option people type (--genre Dramas --genre Comedies)
_LIST_OPTIONS = {
    "types": "type",
    "genres": "genre",
    "exclude_genres": "exclude-genre",
    "countries": "country",
    "exclude_countries": "exclude-country",
    "ratings": "rating",
    "exclude_ratings": "exclude-rating",
    "people": "person",
    "exclude_people": "exclude-person",
    "exclude_ids": "exclude-id",
}
_NUMBER_OPTIONS = ("year_min", "year_max", "duration_min", "duration_max", "seasons_max")

catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Catalog directory (default: the shipped Netflix titles, built on first use).",
)
embedder_option = click.option(
    "--embedder", default=None, help="`minilm` (default), a local sentence-transformers dir, or `hashing:DIM`."
)
json_flag = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")


def query_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One option per CatalogQuery field: repeatable for lists (any-of / none-of), integer for bounds."""
    for field in reversed(_NUMBER_OPTIONS):
        fn = click.option(f"--{field.replace('_', '-')}", field, type=int, default=None)(fn)
    for field, flag in reversed(_LIST_OPTIONS.items()):
        fn = click.option(f"--{flag}", field, multiple=True, help=f"Repeatable: {field.replace('_', ' ')}.")(fn)
    return fn


def _query(options: dict[str, Any]) -> CatalogQuery:
    from agentdistill.memory.catalog import CatalogQuery

    values = {f: options.pop(f) for f in (*_LIST_OPTIONS, *_NUMBER_OPTIONS)}
    return CatalogQuery(**{f: v for f, v in values.items() if v not in ((), None)})


def _embedder(spec: str | None) -> Any:
    from agentdistill.memory.embedders import make_embedder

    return make_embedder(spec)


def _open(catalog_dir: Path | None, embedder: str | None) -> Catalog:
    from agentdistill.memory.catalog import Catalog, default_catalog

    if catalog_dir is not None:
        return Catalog.open(catalog_dir, _embedder(embedder) if embedder else None)
    return default_catalog(settings(click.get_current_context()).home, _embedder(embedder))


def _length(item: CatalogItem) -> str:
    if item.duration_min is not None:
        return f"{item.duration_min} min"
    if item.seasons is not None:
        return f"{item.seasons} season" + ("s" if item.seasons != 1 else "")
    return ""


def _show(items: Sequence[CatalogItem], title: str, scores: Sequence[float] | None = None) -> None:
    columns = ["id", "title", "type", "year", "length", "genres", "rating"] + (["score"] if scores else [])
    rows = []
    for n, item in enumerate(items):
        row = [item.id, item.title, item.type, item.release_year, _length(item), ", ".join(item.genres), item.rating]
        rows.append(row + ([f"{scores[n]:.3f}"] if scores else []))
    table(title, columns, rows)


@click.group("catalog")
def catalog() -> None:
    """Recommendation catalogs: titles in SQLite for filters, descriptions embedded for semantic search."""


@catalog.command("build")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Directory (default: under the home).")
@embedder_option
@json_flag
def build(out: Path | None, embedder: str | None, as_json: bool) -> None:
    """Build the shipped Netflix catalog (1500 titles), into OUT or the default place chat and bench use."""
    from agentdistill.memory.catalog import Catalog, default_catalog, load_items, packaged_catalog_path

    if out is None:
        built = default_catalog(settings(click.get_current_context()).home, _embedder(embedder))
    else:
        built = Catalog.build(out, load_items(packaged_catalog_path()), _embedder(embedder))
    _info(built, as_json)


@catalog.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Directory (default: <home>/catalogs/<FILE stem>)."
)
@click.option(
    "--map",
    "pairs",
    multiple=True,
    metavar="OURS=THEIRS",
    help="Read our field from their column, e.g. countries=country.",
)
@embedder_option
@json_flag
def import_(file: Path, out: Path | None, pairs: tuple[str, ...], embedder: str | None, as_json: bool) -> None:
    """Build a catalog from a CSV or JSONL FILE (columns named like ours, or mapped with --map)."""
    from agentdistill.memory.catalog import Catalog, import_catalog

    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise click.BadParameter(f"{pair!r} must look like OURS=THEIRS, e.g. countries=country", param_hint="--map")
        mapping[ours.strip()] = theirs.strip()
    items = import_catalog(file, mapping)
    target = out or settings(click.get_current_context()).home / "catalogs" / file.stem
    _info(Catalog.build(target, items, _embedder(embedder)), as_json)


@catalog.command("info")
@catalog_option
@embedder_option
@json_flag
def info(catalog_dir: Path | None, embedder: str | None, as_json: bool) -> None:
    """Where a catalog is, how many titles of each kind it holds, its vocabulary and embedder."""
    _info(_open(catalog_dir, embedder), as_json)


def _info(opened: Catalog, as_json: bool) -> None:
    data = opened.info()
    if as_json:
        emit_json(data)
        return
    table(f"catalog {data['directory']}", ["field", "value"], [(k, v) for k, v in data.items() if k != "directory"])


@catalog.command("search")
@click.argument("text")
@click.option("-k", "--k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@catalog_option
@embedder_option
@query_options
@json_flag
def search(text: str, k: int, catalog_dir: Path | None, embedder: str | None, as_json: bool, **options: Any) -> None:
    """The K titles closest in meaning to TEXT, among those meeting the filter options."""
    query = _query(options)
    opened = _open(catalog_dir, embedder)
    among = None if query.is_empty() else [item.id for item in opened.filter(query)]
    hits = opened.retrieve(text, k=k, among=among)
    if as_json:
        emit_json([{**item.to_dict(), "score": score} for item, score in hits])
        return
    if not hits:
        click.echo("no titles match")
        return
    _show([item for item, _ in hits], f"{text!r}", [score for _, score in hits])


@catalog.command("filter")
@click.option("--limit", type=click.IntRange(0), default=20, show_default=True, help="Titles to show (0: all).")
@catalog_option
@embedder_option
@query_options
@json_flag
def filter_(limit: int, catalog_dir: Path | None, embedder: str | None, as_json: bool, **options: Any) -> None:
    """Titles meeting every filter option, in catalog order (lists are any-of, --exclude-* none-of)."""
    query = _query(options)
    items = _open(catalog_dir, embedder).filter(query)
    shown = items[:limit] if limit else items
    if as_json:
        emit_json({"count": len(items), "query": query.to_dict(), "items": [item.to_dict() for item in shown]})
        return
    _show(shown, f"{len(items)} titles match" + (f" (first {len(shown)})" if len(shown) < len(items) else ""))
