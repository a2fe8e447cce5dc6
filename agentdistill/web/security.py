"""Who may use the UI: loopback by default; any other bind needs a token; POSTs need the page's CSRF token.

- Binding to a non-loopback host without a token is refused at start (UITokenRequired): the app can start agent
  turns and read every trajectory, so it must not be open to a network. The token comes from the environment
  (AGENTDISTILL_UI_TOKEN) or a file, never only from a flag (a flag shows in `ps`).
- With a token, every request must carry it: the `ad_token` cookie (set by POST /login) or `Authorization: Bearer`.
- Every POST must carry `X-CSRF-Token` equal to the per-process secret the pages embed (a `<meta>` tag), and an
  Origin, when sent, must be this server's: another site's form or script cannot post as the user.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from agentdistill.errors import AgentDistillError

TOKEN_ENV = "AGENTDISTILL_UI_TOKEN"
TOKEN_COOKIE = "ad_token"
CSRF_HEADER = "X-CSRF-Token"
_OPEN_PATHS = ("/login", "/static/")  # reachable without the token: the login form and its stylesheet


class UITokenRequired(AgentDistillError):
    """A non-loopback bind without a token."""


@dataclass(frozen=True)
class UIConfig:
    """How the UI serves: where, and the access token (None: loopback only)."""

    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = field(default=None, repr=False)
    csrf_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise UITokenRequired(
                f"--host {self.host} opens the UI beyond this machine: set a token in {TOKEN_ENV} or pass"
                " --token-file FILE (then open /login with it), or keep the default --host 127.0.0.1."
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(env: dict[str, str], token_file: Path | None) -> str | None:
    """The UI token from `token_file` (first line) or AGENTDISTILL_UI_TOKEN; None when neither is set."""
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise UITokenRequired(f"cannot read the token file {token_file}: {exc.strerror}") from None
        if not text or len(text[0].strip()) < 16:
            raise UITokenRequired(f"{token_file}: the token must be one line of at least 16 characters.")
        return text[0].strip()
    token = env.get(TOKEN_ENV, "").strip()
    if token and len(token) < 16:
        raise UITokenRequired(f"{TOKEN_ENV} must be at least 16 characters.")
    return token or None


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


class GuardMiddleware(BaseHTTPMiddleware):
    """Token (when configured) on every request, CSRF token and same origin on every POST."""

    def __init__(self, app: object, config: UIConfig) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.config = config

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if self.config.token and not path.startswith(_OPEN_PATHS):
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not (same(request.cookies.get(TOKEN_COOKIE), self.config.token) or same(bearer, self.config.token)):
                if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                    return PlainTextResponse("Open /login and give the UI token.", status_code=401)
                return JSONResponse({"error": "missing or wrong UI token"}, status_code=401)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.headers.get('host', '')}":
                return JSONResponse({"error": f"cross-origin {request.method} refused"}, status_code=403)
            if not same(request.headers.get(CSRF_HEADER), self.config.csrf_secret) and path != "/login":
                return JSONResponse({"error": f"missing or wrong {CSRF_HEADER}"}, status_code=403)
        return await call_next(request)
