"""The UI's FastAPI app: one router per area, each in its own module, sharing one WebContext.

    /chat ...           chat.py          talk to an agent; threads are `agentdistill chat`'s (SqliteSaver)
    /trajectories ...   trajectories.py  the trajectory store: table, run page, side-by-side of two runs
    /bench, /distill    runs.py          bench run dirs and distill run dirs under the home, live while running
    /login              here             the token form (only when a token is configured)

Pages are Jinja2 templates with autoescape on: a model's or a dataset's text is always shown as text. Scripts
build DOM with textContent only (static/app.js), never innerHTML with data.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from agentdistill.config import Settings
from agentdistill.web.context import WebContext
from agentdistill.web.security import TOKEN_COOKIE, GuardMiddleware, UIConfig, same

HERE = Path(__file__).parent


def create_app(settings: Settings, ui: UIConfig | None = None) -> FastAPI:
    """The app serving `settings.home`'s stores; `ui` says how it is guarded (default: loopback, no token)."""
    from agentdistill.web import chat, runs, trajectories

    ui = ui or UIConfig()
    app = FastAPI(title="agentdistill", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = WebContext(settings, ui, Jinja2Templates(directory=HERE / "templates"))
    app.add_middleware(GuardMiddleware, config=ui)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (chat, trajectories, runs):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/chat")

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        return app.state.web.page(request, "login.html", error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        token = parse_qs((await request.body()).decode("utf-8", "replace")).get("token", [""])[0]
        if not same(token, ui.token):
            return app.state.web.page(request, "login.html", error="wrong token")
        response = RedirectResponse("/chat", status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    return app
