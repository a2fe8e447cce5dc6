"""The catalog (`agentdistill.memory.catalog`) as tools a planner names: filter, retrieve, rank, explain.

Arguments are flat JSON values: every CatalogQuery field is its own keyword (a list of strings or an integer),
so a plan step is `{"tool": "filter", "args": {"types": ["Movie"], "genres": ["Comedies"], "year_min": 2010}}`.
Results are JSON text holding item ids, which the next step passes on (`among`, `ids`). Faults the model can
fix (a genre the catalog does not have, an unknown id, k out of range) come back as `Error: ...` text with
the closest valid values; our own bugs raise.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentdistill.memory.catalog.items import (
    LIST_FIELDS,
    QUERY_FIELDS,
    CatalogItem,
    CatalogQuery,
    InvalidCatalogValue,
    Vocabulary,
    key,
)
from agentdistill.memory.catalog.rank import explain, rank
from agentdistill.tools.base import Tool

if TYPE_CHECKING:
    from agentdistill.memory.catalog.store import Catalog

DEFAULT_HARD = ("types", "exclude_genres", "exclude_countries", "exclude_ratings", "exclude_people", "exclude_ids")
_VOCABULARY_OF = {
    "types": "types",
    "genres": "genres",
    "exclude_genres": "genres",
    "countries": "countries",
    "exclude_countries": "countries",
    "ratings": "ratings",
    "exclude_ratings": "ratings",
}
_MAX_K = 50  # results per call: more would not fit a small model's context anyway


def make_catalog_tools(catalog: Catalog) -> list[Tool]:
    """filter, retrieve, rank and explain over `catalog`, in that order."""
    vocabulary = catalog.vocabulary()

    def filter_(**args: Any) -> str:
        """Hard filter: the titles that meet every constraint given. Lists mean any-of, exclude_* mean none-of.
        Use the catalog's exact names: types "Movie" / "TV Show", genres like "Horror Movies" or "TV Comedies",
        ratings like "PG-13". year_* are release years; duration_* are minutes (movies only); seasons_max is for
        shows. Returns JSON {"count": N, "items": [{"id", "summary"}]} with the first `limit` matches; pass the
        ids on as retrieve(among=...) or rank(ids=...)."""
        limit = args.pop("limit")
        if not 1 <= limit <= _MAX_K:
            return f"Error: limit must be between 1 and {_MAX_K}, got {limit}."
        query = _query(args, vocabulary)
        if isinstance(query, str):
            return query
        items = catalog.filter(query)
        return _json({"count": len(items), "items": [_brief(item) for item in items[:limit]]})

    def retrieve(text: str, k: int = 10, among: list[str] | None = None) -> str:
        """Semantic search: the k titles whose description is closest in meaning to `text` (a mood, a plot, a
        vibe: "cosy small-town mystery"), best first, optionally only among the given ids (e.g. filter's result).
        Returns JSON {"items": [{"id", "summary", "score"}]}."""
        if not text.strip():
            return 'Error: text is empty. Example: retrieve(text="gritty heist with a twist", k=10).'
        if not 1 <= k <= _MAX_K:
            return f"Error: k must be between 1 and {_MAX_K}, got {k}."
        if among is not None and (problem := _unknown_ids(catalog, among)):
            return problem
        hits = catalog.retrieve(text, k=k, among=among)
        return _json({"items": [{**_brief(item), "score": round(score, 4)} for item, score in hits]})

    def rank_(**args: Any) -> str:
        """Order candidate titles (the ids from filter or retrieve; all titles when ids is omitted) by relevance
        to `text` plus how many of the soft wishes they meet (the same fields as filter, which here only rank),
        with `diversity` (0..1) spreading the picks over genres. Returns JSON {"items": [{"id", "summary",
        "score", "reasons"}]} for the best k."""
        ids, text, k, diversity = args.pop("ids"), args.pop("text"), args.pop("k"), args.pop("diversity")
        if not 1 <= k <= _MAX_K:
            return f"Error: k must be between 1 and {_MAX_K}, got {k}."
        if not 0 <= diversity <= 1:
            return f"Error: diversity must be between 0 and 1, got {diversity}."
        soft = _query(args, vocabulary)
        if isinstance(soft, str):
            return soft
        if ids is not None and (problem := _unknown_ids(catalog, ids)):
            return problem
        candidates = catalog.get_many(ids) if ids is not None else catalog.items()
        ranked = rank(catalog, candidates, text=text, soft=soft, k=k, diversity=diversity)
        return _json({"items": [r.to_dict() for r in ranked]})

    def explain_(**args: Any) -> str:
        """Explain recommendations: for each id, which wishes the title meets and which it misses. Pass the
        user's wishes as the same fields as filter, name the ones that are hard requirements in `hard` (default:
        types and every exclude_* field), and the request text in `text`. Returns JSON {"explanations": [{"id",
        "explanation"}]}."""
        ids, text, hard_fields = args.pop("ids"), args.pop("text"), args.pop("hard")
        hard_fields = list(DEFAULT_HARD) if hard_fields is None else hard_fields
        unknown = [f for f in hard_fields if f not in QUERY_FIELDS]
        if unknown:
            return (
                f"Error: hard names unknown field(s) {', '.join(map(repr, unknown))}; use some of {list(QUERY_FIELDS)}."
            )
        if not ids:
            return "Error: ids is empty: pass the ids to explain, e.g. the ids rank returned."
        if problem := _unknown_ids(catalog, ids):
            return problem
        wishes = _query(args, vocabulary)
        if isinstance(wishes, str):
            return wishes
        soft_fields = [f for f in QUERY_FIELDS if f not in hard_fields]
        hard, soft = wishes.without(*soft_fields), wishes.without(*hard_fields)
        return _json(
            {"explanations": [{"id": i.id, "explanation": explain(i, hard, soft, text)} for i in catalog.get_many(ids)]}
        )

    optional_list = list[str] | None
    return [
        _tool(filter_, "filter", [], [("limit", int, 20)]),
        Tool.from_function(retrieve),
        _tool(
            rank_, "rank", [("ids", optional_list, None), ("text", str, "")], [("k", int, 5), ("diversity", float, 0.3)]
        ),
        _tool(
            explain_,
            "explain",
            [("ids", list[str], inspect.Parameter.empty), ("text", str, "")],
            [("hard", optional_list, None)],
        ),
    ]


def _tool(
    fn: Callable[..., str], name: str, before: Sequence[tuple[str, Any, Any]], after: Sequence[tuple[str, Any, Any]]
) -> Tool:
    """Give `fn(**args)` a real signature: `before`, every CatalogQuery field, then `after`, so the tool schema
    lists each field as its own argument and `bind_arguments` validates them."""
    query_params = [(f, list[str] | None if f in LIST_FIELDS else int | None, None) for f in QUERY_FIELDS]
    params = [
        inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=default)
        for pname, hint, default in (*before, *query_params, *after)
    ]
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    def call(**args: Any) -> str:
        return fn(**(defaults | args))  # a direct call may leave arguments out; bind_arguments does not fill them

    call.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": str}
    call.__doc__ = fn.__doc__
    return Tool.from_function(call, name=name)


def _query(args: Mapping[str, Any], vocabulary: Vocabulary) -> CatalogQuery | str:
    """A CatalogQuery from tool arguments, or `Error: ...` naming a value the catalog does not have."""
    values = {name: value for name, value in args.items() if value not in (None, [])}
    for name, value in values.items():
        allowed = _VOCABULARY_OF.get(name)
        if allowed is None:
            continue
        names: tuple[str, ...] = getattr(vocabulary, allowed)
        known = {key(n) for n in names}
        for wanted in value:
            if key(wanted) not in known:
                return f"Error: {name}: the catalog has no {allowed[:-1]} {wanted!r}. {_closest(wanted, names)}"
    try:
        return CatalogQuery(**values)
    except InvalidCatalogValue as exc:
        return f"Error: {exc}"


def _closest(value: str, names: Sequence[str]) -> str:
    by_key = {key(n): n for n in names}
    contains = [n for k, n in by_key.items() if key(value) in k]
    close = [by_key[k] for k in difflib.get_close_matches(key(value), list(by_key), n=3, cutoff=0.5)]
    guesses = list(dict.fromkeys(contains + close))[:4]
    if guesses:
        return f"Did you mean {', '.join(repr(g) for g in guesses)}?"
    return f"Valid values: {', '.join(names[:40])}{' ...' if len(names) > 40 else ''}."


def _unknown_ids(catalog: Catalog, ids: Sequence[str]) -> str:
    found = {item.id for item in catalog.get_many(ids)}
    missing = [i for i in ids if i not in found]
    if not missing:
        return ""
    hints = catalog.suggest_ids(missing[0])
    hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    listed = ", ".join(repr(m) for m in missing[:5])
    return f"Error: unknown id(s) {listed}: pass ids exactly as filter, retrieve or rank returned them.{hint}"


def _brief(item: CatalogItem) -> dict[str, str]:
    return {"id": item.id, "summary": item.summary()}


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)
