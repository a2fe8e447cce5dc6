"""One page of the trajectory store's runs, newest first: what the web UI's table and its JSON twin show.

Keyset paging: a page ends at a cursor (created_at, rowid) and the next one starts strictly past it, so page
2000 of a 100k-run store costs what page 1 costs (OFFSET would walk every run before it), and runs recorded
while someone pages do not shift the pages. Filters, order and limit run in SQL on the `runs` table (index
`runs_by_created`); step bodies are read only to count the steps and tokens of the page's own runs.
`TrajectoryStore.page` runs the statements built here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentdistill.errors import AgentDistillError
from agentdistill.trajectory import Run

COUNT_CAP = 1_000  # filtered runs are counted up to here: an exact count of 100k filtered runs is a table scan
MAX_LIMIT = 500


class BadPageQuery(AgentDistillError):
    """A page query with an unreadable cursor or an impossible limit."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the run's created_at and its rowid (ties in created_at are ordered by rowid)."""

    created_at: float
    rowid: int

    def __str__(self) -> str:
        return f"{self.created_at!r}_{self.rowid}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor `str(cursor)` wrote; BadPageQuery for anything else."""
        stamp, sep, rowid = text.partition("_")
        try:
            if not sep:
                raise ValueError(text)
            return cls(float(stamp), int(rowid))
        except ValueError:
            raise BadPageQuery(f"cursor {text!r} is not one this server wrote: open the first page again.") from None


@dataclass(frozen=True, kw_only=True)
class PageQuery:
    """Which runs (every filter optional) and which page of them; `before`/`after` come from a RunPage."""

    agent: str | None = None
    model: str | None = None  # matches any role's model spec
    status: str | None = None  # running | ok | max_steps | error
    min_score: float | None = None
    suite: str | None = None
    item_id: str | None = None
    since: float | None = None  # created_at >= since (epoch seconds)
    until: float | None = None  # created_at < until
    before: Cursor | None = None  # only runs older than this one: the next page
    after: Cursor | None = None  # only runs newer than this one: the previous page
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadPageQuery(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}.")
        if self.before is not None and self.after is not None:
            raise BadPageQuery("give `before` (next page) or `after` (previous page), not both.")

    @property
    def filtered(self) -> bool:
        """Whether any filter narrows the runs (the cursors only page through them)."""
        names = ("agent", "model", "status", "min_score", "suite", "item_id", "since", "until")
        return any(getattr(self, name) not in (None, "") for name in names)

    def store_filters(self) -> dict[str, Any]:
        """The filters the store's own `_filters` understands."""
        return {"agent": self.agent, "status": self.status, "min_score": self.min_score, "suite": self.suite,
                "model": self.model}  # fmt: skip

    def _where(self, where: str, args: Sequence[Any]) -> tuple[list[str], list[Any]]:
        clauses, args = [where.removeprefix("WHERE ")] if where else [], list(args)
        if self.model:  # a plain substring test first: most rows fail it before json_each parses them
            clauses.insert(0, "instr(models, ?) > 0")
            args.insert(0, json.dumps(self.model))
        for clause, value in (("item_id = ?", self.item_id), ("created_at >= ?", self.since),
                              ("created_at < ?", self.until)):  # fmt: skip
            if value is not None:
                clauses.append(clause)
                args.append(value)
        return clauses, args

    def count_sql(self, where: str, args: Sequence[Any]) -> tuple[str, list[Any]]:
        """Matching runs (all pages): exact without filters (an index count), else counted up to COUNT_CAP + 1."""
        clauses, args = self._where(where, args)
        if not clauses:
            return "SELECT count(*) FROM runs", args
        return f"SELECT count(*) FROM (SELECT 1 FROM runs WHERE {' AND '.join(clauses)} LIMIT {COUNT_CAP + 1})", args

    def page_sql(self, where: str, args: Sequence[Any]) -> tuple[str, list[Any]]:
        """This page's run rows plus one (whether more follow), each row ending in the run's rowid."""
        clauses, args = self._where(where, args)
        order = "DESC"
        if self.before is not None:
            clauses.append("(created_at, rowid) < (?, ?)")
            args += [self.before.created_at, self.before.rowid]
        elif self.after is not None:  # walked oldest first from the cursor, then turned round
            clauses.append("(created_at, rowid) > (?, ?)")
            args += [self.after.created_at, self.after.rowid]
            order = "ASC"
        filtered = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT *, rowid FROM runs {filtered} ORDER BY created_at {order}, rowid {order} LIMIT {self.limit + 1}"
        return sql, args


# Step count and tokens of the page's runs only: one indexed lookup per run (steps' key starts with run_id).
STEP_TOTALS_SQL = (
    "SELECT run_id, count(*), sum(coalesce(json_extract(body, '$.prompt_tokens'), 0)"
    " + coalesce(json_extract(body, '$.completion_tokens'), 0)) FROM steps"
    " WHERE run_id IN (SELECT value FROM json_each(?)) GROUP BY run_id"
)


def step_totals_args(runs: Sequence[Run]) -> tuple[str]:
    return (json.dumps([run.id for run in runs]),)


@dataclass(frozen=True)
class RunRow:
    """A run without its steps, with the figures the table shows."""

    run: Run
    cursor: Cursor
    steps: int  # recorded steps (model calls, tool calls, events)
    tokens: int  # prompt + completion tokens of its model calls

    def to_dict(self) -> dict[str, Any]:
        data = self.run.to_dict()
        del data["steps"]
        return {**data, "steps": self.steps, "tokens": self.tokens}


@dataclass(frozen=True)
class RunPage:
    """One page, newest first, and the cursors of its neighbours (None: no such page)."""

    rows: list[RunRow]
    total: int  # runs matching the filters on all pages (with filters: counted up to COUNT_CAP)
    total_capped: bool  # with filters, more than COUNT_CAP match: `total` is a lower bound
    next: Cursor | None  # older runs follow: pass as PageQuery.before
    prev: Cursor | None  # newer runs precede: pass as PageQuery.after

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [row.to_dict() for row in self.rows],
            "total": self.total,
            "total_capped": self.total_capped,
            "next": None if self.next is None else str(self.next),
            "prev": None if self.prev is None else str(self.prev),
        }


def assemble_page(
    query: PageQuery, found: Sequence[tuple[Run, int]], totals: dict[str, tuple[int, int]], count: int
) -> RunPage:
    """The RunPage of `found` ((run, rowid) in the order page_sql returned, one more than the limit at most)."""
    more = len(found) > query.limit
    found = list(found[: query.limit])
    if query.after is not None:
        found.reverse()
    rows = [RunRow(run, Cursor(run.created_at, rowid), *totals.get(run.id, (0, 0))) for run, rowid in found]
    first, last = (rows[0].cursor, rows[-1].cursor) if rows else (None, None)
    if query.after is not None:
        nxt, prev = last, first if more else None
    else:
        nxt, prev = last if more else None, first if query.before is not None else None
    capped = count > COUNT_CAP and query.filtered
    return RunPage(rows, COUNT_CAP if capped else count, capped, nxt, prev)
