"""The trajectory table's query string <-> a PageQuery: the filter form's fields, the pager's cursors.

A filter form submits every field, empty ones as "", so each value is read as text here and an empty one means
"no filter"; a value that cannot be read is a BadPageQuery naming the field, which the routes answer with 400.
Dates are days in the server's local time (as `trajectories list` prints them); `until` includes its day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from urllib.parse import urlencode

from agentdistill.memory.trajectory_page import BadPageQuery, Cursor, PageQuery

FILTERS = ("agent", "model", "status", "min_score", "suite", "since", "until")
STATUSES = ("running", "ok", "max_steps", "error")
PAGE_SIZE = 50


def page_query(params: Mapping[str, str], *, limit: int = PAGE_SIZE) -> PageQuery:
    """The PageQuery of a request's query parameters (the filter form's names, `before`, `after`, `limit`)."""
    text = {key: (params.get(key) or "").strip() for key in (*FILTERS, "before", "after", "limit")}
    size = _number(text["limit"], "limit")
    if text["status"] and text["status"] not in STATUSES:
        raise BadPageQuery(f"status must be one of {', '.join(STATUSES)}, got {text['status']!r}.")
    return PageQuery(
        agent=text["agent"] or None,
        model=text["model"] or None,
        status=text["status"] or None,
        min_score=_number(text["min_score"], "min_score"),
        suite=text["suite"] or None,
        since=_day(text["since"], "since"),
        until=_day(text["until"], "until", end=True),
        before=Cursor.parse(text["before"]) if text["before"] else None,
        after=Cursor.parse(text["after"]) if text["after"] else None,
        limit=limit if size is None else int(size),
    )


def filter_values(params: Mapping[str, str]) -> dict[str, str]:
    """The filters as the form shows them again (text, "" when unset)."""
    return {key: (params.get(key) or "").strip() for key in FILTERS}


def page_link(path: str, filters: Mapping[str, str], **cursor: Cursor | None) -> str:
    """`path` with the non-empty filters and one cursor (`before=` or `after=`) as its query string."""
    query = {key: value for key, value in filters.items() if value}
    query.update({key: str(value) for key, value in cursor.items() if value is not None})
    return f"{path}?{urlencode(query)}" if query else path


def _number(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadPageQuery(f"{name} must be a number, got {text!r}.") from None


def _day(text: str, name: str, *, end: bool = False) -> float | None:
    """Local midnight starting the day (`end`: starting the next day) as epoch seconds."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise BadPageQuery(f"{name} must be a date as YYYY-MM-DD, got {text!r}.") from None
    if end:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time()).timestamp()
