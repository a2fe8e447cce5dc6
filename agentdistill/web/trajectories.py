"""/trajectories: the trajectory store as pages, each with a JSON twin for scripts.

    GET /trajectories?agent=&model=&status=&min_score=&suite=&since=&until=   the table, 50 a page, newest first
                     &before=CURSOR | &after=CURSOR                           (next / previous page)
    GET /trajectories/compare?a=ID&b=ID     two runs side by side by step, the first divergence marked
    GET /trajectories/{id}                  one run: question, answer, every step
    GET /api/trajectories?...  /api/trajectories/compare?...  /api/trajectories/{id}   the same data as JSON

The table pages in SQL (TrajectoryStore.page: keyset on created_at, no step bodies), so it stays fast on a store
of 100k runs. A run id may be given by a unique prefix, as `trajectories show` takes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from agentdistill.agents.factory import AGENTS
from agentdistill.errors import StoreError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.memory.trajectory_page import BadPageQuery, PageQuery, RunPage
from agentdistill.trajectory import Run
from agentdistill.web import view
from agentdistill.web.context import WebContext, context
from agentdistill.web.divergence import aligned, first_divergence
from agentdistill.web.pages import problem_json, problem_page
from agentdistill.web.trajectory_query import STATUSES, filter_values, page_link, page_query

SAME_ITEM_RUNS = 20  # other runs of a run's benchmark item listed on its page (teacher, student, ...)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    store = getattr(app.state, "trajectory_store", None)
    if store is not None:
        store.close()


router = APIRouter(lifespan=_lifespan)


async def trajectory_store(request: Request) -> TrajectoryStore:
    """The app's store, opened on first use and kept (async: on the event loop, so two requests never open two).

    Opening checks the schema and counts the runs, a scan of an index that would cost every request milliseconds."""
    store = getattr(request.app.state, "trajectory_store", None)
    if store is None:
        path = context(request).settings.trajectories_path
        try:
            store = request.app.state.trajectory_store = TrajectoryStore.open(path)
        except StoreError as exc:  # unreadable or newer than this agentdistill: the message says what to do
            raise HTTPException(status_code=503, detail=str(exc)) from exc
    return store


Web = Annotated[WebContext, Depends(context)]
Store = Annotated[TrajectoryStore, Depends(trajectory_store)]
RunIds = Annotated[list[str] | None, Query()]  # repeated `run=`: the table's ticked checkboxes


class NeedTwoRuns(BadPageQuery):
    """A compare request without exactly two run ids."""


def _table_values(request: Request, store: TrajectoryStore) -> tuple[RunPage, dict[str, str]]:
    params = dict(request.query_params)
    return store.page(page_query(params)), filter_values(params)


def _pair(a: str | None, b: str | None, run: list[str] | None) -> tuple[str, str]:
    """The two run ids of a compare: `a` and `b`, or two `run` (the table's checkboxes)."""
    ids = [i.strip() for i in (a, b, *(run or ())) if i and i.strip()]
    if len(ids) != 2:
        raise NeedTwoRuns(f"compare needs two runs, got {len(ids)}: tick two runs in the table, or pass ?a=ID&b=ID.")
    return ids[0], ids[1]


def _compared(store: TrajectoryStore, a: str, b: str) -> dict[str, Any]:
    left, right = store.get(a), store.get(b)
    return {"a": left, "b": right, "first_divergence": first_divergence(left.steps, right.steps)}


def _same_item(store: TrajectoryStore, run: Run) -> list[Any]:
    if not (run.suite and run.item_id):
        return []
    page = store.page(PageQuery(suite=run.suite, item_id=run.item_id, limit=SAME_ITEM_RUNS + 1))
    return [row for row in page.rows if row.run.id != run.id][:SAME_ITEM_RUNS]


# -- pages -----------------------------------------------------------------------------------------------------
@router.get("/trajectories", response_class=HTMLResponse)
def table_page(request: Request, ctx: Web, store: Store) -> Response:
    try:
        page, filters = _table_values(request, store)
    except BadPageQuery as exc:
        return problem_page(ctx, request, 400, str(exc))
    carried = {**filters, "limit": request.query_params.get("limit", "")}  # the pager keeps the page size too
    return ctx.page(
        request, "trajectories.html", page=page, filters=filters, statuses=STATUSES, agents=AGENTS, fmt=view,
        next_url=page.next and page_link("/trajectories", carried, before=page.next),
        prev_url=page.prev and page_link("/trajectories", carried, after=page.prev),
    )  # fmt: skip


@router.get("/trajectories/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, ctx: Web, store: Store, a: str | None = None, b: str | None = None, run: RunIds = None
) -> Response:
    try:
        compared = _compared(store, *_pair(a, b, run))
    except NeedTwoRuns as exc:
        return problem_page(ctx, request, 400, str(exc))
    except StoreError as exc:
        return problem_page(ctx, request, 404, str(exc))
    rows = aligned(compared["a"].steps, compared["b"].steps)
    return ctx.page(request, "compare.html", rows=rows, fmt=view, **compared)


@router.get("/trajectories/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, ctx: Web, store: Store) -> Response:
    try:
        run = store.get(run_id)
    except StoreError as exc:
        return problem_page(ctx, request, 404, str(exc))
    return ctx.page(request, "trajectory.html", run=run, same_item=_same_item(store, run), fmt=view)


# -- JSON twins ------------------------------------------------------------------------------------------------
@router.get("/api/trajectories")
def table_json(request: Request, store: Store) -> Response:
    try:
        page, filters = _table_values(request, store)
    except BadPageQuery as exc:
        return problem_json(400, str(exc))
    return JSONResponse({**page.to_dict(), "filters": filters})


@router.get("/api/trajectories/compare")
def compare_json(store: Store, a: str | None = None, b: str | None = None, run: RunIds = None) -> Response:
    try:
        compared = _compared(store, *_pair(a, b, run))
    except NeedTwoRuns as exc:
        return problem_json(400, str(exc))
    except StoreError as exc:
        return problem_json(404, str(exc))
    return JSONResponse({**compared, "a": compared["a"].to_dict(), "b": compared["b"].to_dict()})


@router.get("/api/trajectories/{run_id}")
def run_json(run_id: str, store: Store) -> Response:
    try:
        return JSONResponse(store.get(run_id).to_dict())
    except StoreError as exc:
        return problem_json(404, str(exc))
