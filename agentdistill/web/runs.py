"""/bench and /distill: the run directories under the home, each page with a JSON twin for scripts and polling.

    GET /bench?dir=                  bench runs under <home>/bench (or under `dir`): suite, agent, model, progress
    GET /bench/run?dir=RUN           one run's report tables, items and plots
    GET /bench/compare?dir=A&dir=B   `bench compare` of two or more runs, as an HTML table
    GET /distill?dir=                distill runs under <home>/distill (or under `dir`)
    GET /distill/run?dir=OUT         plan, stages, loss curve, eval table; polls /api/distill/run while running
    GET /files/png?path=             a PNG inside the home (report plots, loss.png)
    GET /api/bench  /api/bench/run  /api/bench/compare  /api/distill  /api/distill/run   the JSON twins

Every `dir` and `path` must resolve inside the home (home_paths.py): outside it is a 400 saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from agentdistill.benchmarks.report import ReportError
from agentdistill.benchmarks.results import RunDirError
from agentdistill.web import view
from agentdistill.web.bench_dirs import bench_view, compare_report, run_report
from agentdistill.web.context import WebContext, context
from agentdistill.web.distill_dirs import distill_brief, distill_state
from agentdistill.web.home_paths import NotFoundInHome, OutsideHome, existing_dir, find_dirs, home_relative, inside_home
from agentdistill.web.pages import problem_json, problem_page

router = APIRouter()
Web = Annotated[WebContext, Depends(context)]
Build = Callable[[Path, Request], dict[str, Any]]
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (OutsideHome, 400),
    (ReportError, 400),
    (NotFoundInHome, 404),
    (RunDirError, 404),
)
_ERRORS = tuple(kind for kind, _ in _STATUS)


def _status(exc: Exception) -> int:
    return next(code for kind, code in _STATUS if isinstance(exc, kind))


def _page(ctx: WebContext, request: Request, template: str, build: Build) -> Response:
    try:
        values = build(ctx.settings.home, request)
    except _ERRORS as exc:
        return problem_page(ctx, request, _status(exc), str(exc))
    return ctx.page(request, template, fmt=view, data=values)


def _json(ctx: WebContext, request: Request, build: Build) -> Response:
    try:
        return JSONResponse(build(ctx.settings.home, request))
    except _ERRORS as exc:
        return problem_json(_status(exc), str(exc))


def _root(home: Path, request: Request, default: Path) -> Path:
    raw = request.query_params.get("dir")
    return existing_dir(home, raw) if raw else default


def _run_dir(home: Path, request: Request) -> Path:
    raw = request.query_params.get("dir") or ""
    path = existing_dir(home, raw)
    if not (path / "run.json").is_file() and not (path / "plan.json").is_file():
        raise NotFoundInHome(f"{raw!r} holds no run (no run.json or plan.json): pick one from the list.")
    return path


# -- what each page shows ------------------------------------------------------------------------------------
def bench_list(home: Path, request: Request) -> dict[str, Any]:
    """The bench runs under the root, newest first; an unreadable one is listed with its error."""
    root = _root(home, request, home / "bench")
    runs, problems = [], []
    for path in find_dirs(root, "run.json"):
        try:
            runs.append(bench_view(home, path).brief())
        except RunDirError as exc:
            problems.append({"dir": home_relative(home, path), "error": str(exc)})
    runs.sort(key=lambda r: -r["created_at"])
    return {"root": home_relative(home, root), "runs": runs, "problems": problems}


def bench_run(home: Path, request: Request) -> dict[str, Any]:
    return run_report(bench_view(home, _run_dir(home, request)))


def bench_compare(home: Path, request: Request) -> dict[str, Any]:
    raw = request.query_params.getlist("dir")
    if len(raw) < 2:
        raise ReportError(f"compare needs at least two runs, got {len(raw)}: tick two or more runs in the list.")
    paths = [existing_dir(home, r) for r in raw]
    return {**compare_report(paths), "dirs": [home_relative(home, p) for p in paths]}


def distill_list(home: Path, request: Request) -> dict[str, Any]:
    root = _root(home, request, home / "distill")
    runs = [distill_brief(home, path) for path in find_dirs(root, "plan.json", depth=3)]
    return {"root": home_relative(home, root), "runs": runs}


def distill_run(home: Path, request: Request) -> dict[str, Any]:
    return distill_state(home, _run_dir(home, request))


# -- routes ---------------------------------------------------------------------------------------------------
@router.get("/bench")
def bench_page(request: Request, ctx: Web) -> Response:
    return _page(ctx, request, "bench.html", bench_list)


@router.get("/bench/run")
def bench_run_page(request: Request, ctx: Web) -> Response:
    return _page(ctx, request, "bench_run.html", bench_run)


@router.get("/bench/compare")
def bench_compare_page(request: Request, ctx: Web) -> Response:
    return _page(ctx, request, "bench_compare.html", bench_compare)


@router.get("/distill")
def distill_page(request: Request, ctx: Web) -> Response:
    return _page(ctx, request, "distill.html", distill_list)


@router.get("/distill/run")
def distill_run_page(request: Request, ctx: Web) -> Response:
    return _page(ctx, request, "distill_run.html", distill_run)


@router.get("/api/bench")
def bench_json(request: Request, ctx: Web) -> Response:
    return _json(ctx, request, bench_list)


@router.get("/api/bench/run")
def bench_run_json(request: Request, ctx: Web) -> Response:
    return _json(ctx, request, bench_run)


@router.get("/api/bench/compare")
def bench_compare_json(request: Request, ctx: Web) -> Response:
    return _json(ctx, request, bench_compare)


@router.get("/api/distill")
def distill_json(request: Request, ctx: Web) -> Response:
    return _json(ctx, request, distill_list)


@router.get("/api/distill/run")
def distill_run_json(request: Request, ctx: Web) -> Response:
    return _json(ctx, request, distill_run)


@router.get("/files/png")
def png_file(ctx: Web, path: str = "") -> Response:
    """A PNG inside the home; anything else (another type, outside the home, missing) is refused."""
    try:
        file = inside_home(ctx.settings.home, path)
    except OutsideHome as exc:
        return problem_json(400, str(exc))
    if file.suffix.lower() != ".png" or not file.is_file():
        return problem_json(404, f"{path!r} is not a PNG file in the home.")
    return FileResponse(file, media_type="image/png")
