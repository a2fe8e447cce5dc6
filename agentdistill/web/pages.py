"""How the trajectory, bench and distill routes say what went wrong: an error page or a JSON error."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse

from agentdistill.web.context import WebContext


def problem_page(ctx: WebContext, request: Request, status: int, message: str) -> HTMLResponse:
    """The error page (templates/problem.html) with `status` and the error's own message (which says what to do)."""
    response = ctx.page(request, "problem.html", status=status, message=message)
    response.status_code = status
    return response


def problem_json(status: int, message: str) -> JSONResponse:
    """`{"error": message}` with `status`, the shape the guard middleware's refusals have too."""
    return JSONResponse({"error": message}, status_code=status)
