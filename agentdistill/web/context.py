"""What every route of the UI needs (the settings, the UI config, the templates), as one object on the app.

Routers take it with `Depends(context)`; app.py builds it. It lives here, not in app.py, because app.py imports
the routers: a router importing app.py would be an import circle (tests/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from agentdistill.config import Settings
from agentdistill.web.security import UIConfig


@dataclass(frozen=True)
class WebContext:
    """What every route needs: the settings (home, stores, default model), the UI config, the templates."""

    settings: Settings
    ui: UIConfig
    templates: Jinja2Templates

    def page(self, request: Request, name: str, **values: Any) -> HTMLResponse:
        """Render template `name` with the nav, the CSRF token and `values` (autoescaped)."""
        return self.templates.TemplateResponse(request, name, {"csrf": self.ui.csrf_secret, **values})


def context(request: Request) -> WebContext:
    """FastAPI dependency: the app's WebContext."""
    return request.app.state.web
