"""/chat: talk to any agent in the browser, on the same threads as `agentdistill chat`.

    GET  /chat?thread=ID                   the page: settings, thread list, the thread's earlier turns, a message box
    POST /api/chat/turns                   start a turn on a worker thread -> {turn_id, thread}; 400 names the field
    GET  /api/chat/turns/{id}/events       its Server-Sent Events: token, step, then answer or error (replayed
                                           from the start, or from Last-Event-ID, so a fast turn is never lost)
    POST /api/chat/turns/{id}/stop         end it at its next token or step; its answer event says `interrupted`

Turns run in chat_turns.py, agents are built once in chat_agents.py, and the event log is chat_events.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from agentdistill.agents.factory import AGENTS
from agentdistill.memory.agent_sources import NO_KB
from agentdistill.web.chat_agents import DEFAULT_KB, SOURCE_FIELD, AgentKey, BadInput
from agentdistill.web.chat_turns import ChatService, ChatTurn
from agentdistill.web.context import WebContext, context
from agentdistill.web.home_paths import OutsideHome, inside_home

MAX_QUESTION_CHARS = 20_000
MAX_THREAD_CHARS = 200
SOURCES = ("kb", "catalog", "materials")  # the form fields an agent may answer from


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    service = getattr(app.state, "chat", None)
    if service is not None:
        service.close()


router = APIRouter(lifespan=_lifespan)
NAMED_BACKENDS = ("openai", "langchain")  # their spec is a model name, which may hold a slash (org/model)


async def chat_service(request: Request) -> ChatService:
    """The app's ChatService, made on first use (async: on the event loop, so two requests never make two)."""
    service = getattr(request.app.state, "chat", None)
    if service is None:
        service = request.app.state.chat = ChatService(context(request).settings)
    return service


Web = Annotated[WebContext, Depends(context)]
Service = Annotated[ChatService, Depends(chat_service)]


def parse_turn(body: Any, default_model: str, home: Path) -> tuple[AgentKey, str, str | None]:
    """(agent key, question, thread or None for a new one) from a POST body; BadInput names the field to fix."""
    if not isinstance(body, dict):
        raise BadInput("body", "send a JSON object: {question, agent, model, thread, kb, catalog, materials}.")

    def text(name: str) -> str:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadInput(name, f"{name} must be text, got {type(value).__name__}.")
        return (value or "").strip()

    agent = text("agent") or "react"
    if agent not in AGENTS:
        raise BadInput("agent", f"unknown agent {agent!r}: choose one of {', '.join(AGENTS)}.")
    question = text("question")
    if not question:
        raise BadInput("question", "the question is empty: type a message, then Send.")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadInput("question", f"the question has {len(question)} characters; keep it under {MAX_QUESTION_CHARS}.")
    thread = text("thread") or None
    if thread is not None and (len(thread) > MAX_THREAD_CHARS or not thread.isprintable()):
        raise BadInput("thread", f"a thread id is printable text of at most {MAX_THREAD_CHARS} characters: "
                       "pick a thread from the list or start a new one.")  # fmt: skip
    source = SOURCE_FIELD.get(agent, "kb")
    for name in ("catalog", "materials"):
        if text(name) and source != name:
            owner = next(a for a, f in SOURCE_FIELD.items() if f == name)
            raise BadInput(name, f"{name} is a field of the {owner} agent; the {agent} agent does not read it: "
                           f"clear it, or pick the {owner} agent.")  # fmt: skip
    key = AgentKey(
        agent=agent,
        model=text("model") or default_model,
        kb=(text("kb") or DEFAULT_KB) if source == "kb" else NO_KB,
        catalog=_in_home(home, "catalog", text("catalog")),
        materials=_in_home(home, "materials", text("materials")),
    )
    backend, _, rest = key.model.partition(":")
    if backend not in NAMED_BACKENDS and (any(mark in rest for mark in ("/", "\\", "~")) or rest.startswith(".")):
        # hf:DIR, student:DIR, scripted:FILE, gguf:FILE: weights or a script on disk, relative to the home
        key = dataclasses.replace(key, model=f"{backend}:{_in_home(home, 'model', rest)}")
    return key, question, thread


def _in_home(home: Path, field: str, raw: str) -> str | None:
    """`raw` resolved (relative to the home) when it is a path inside the home, None when empty; BadInput when it
    is outside: the UI reads no file outside its home."""
    if not raw:
        return None
    try:
        return str(inside_home(home, str(Path(raw).expanduser())))
    except OutsideHome as exc:
        raise BadInput(field, f"{exc} Put it under the home, or start the UI on a home holding it:"
                       " `agentdistill --home DIR ui`.") from None  # fmt: skip


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, **({"field": field} if field else {})}, status_code=status)


def _turn(service: ChatService, turn_id: str) -> ChatTurn | JSONResponse:
    turn = service.turn(turn_id)
    if turn is None:
        return _error(404, f"no turn {turn_id!r}: it ended long ago or the server restarted; reload the page.")
    return turn


@router.get("/chat", response_class=HTMLResponse)
def chat_page(request: Request, web: Web, service: Service, thread: str | None = None) -> HTMLResponse:
    """The chat page; `?thread=ID` opens that thread with its earlier turns."""
    thread = (thread or "").strip()[:MAX_THREAD_CHARS]
    rows = [
        {"id": tid, "agent": agent, "first": first, "turns": turns,
         "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(updated))}
        for tid, agent, first, turns, updated in service.threads()
    ]  # fmt: skip
    owner = service.owner(thread) if thread else None
    fields = {name: " ".join(a for a, f in SOURCE_FIELD.items() if f == name) for name in SOURCES}
    return web.page(
        request, "chat.html", agents=AGENTS, agent=owner or "react", owner=owner, model=web.settings.model,
        kb=DEFAULT_KB, fields=fields, threads=rows, thread=thread,
        turns=service.earlier_turns(thread) if thread else [],
    )  # fmt: skip


@router.post("/api/chat/turns")
async def start_turn(request: Request, service: Service) -> JSONResponse:
    """Start a turn -> 202 {turn_id, thread}; 400 {error, field} for input to fix, 409 while the thread is busy."""
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body is not JSON: send {question, agent, model, thread, ...}.", "body")
    try:
        key, question, thread = parse_turn(body, service.settings.model, service.settings.home)
        # a worker thread of the pool: the first turn of an agent may load a model for a while
        turn = await run_in_threadpool(service.start, key, question, thread)
    except BadInput as exc:
        return _error(exc.status, str(exc), exc.field)
    return JSONResponse({"turn_id": turn.id, "thread": turn.thread}, status_code=202)


@router.get("/api/chat/turns/{turn_id}/events", response_model=None)
def turn_events(turn_id: str, request: Request, service: Service) -> StreamingResponse | JSONResponse:
    """The turn's events as text/event-stream, from the first (or after Last-Event-ID) until its answer or error."""
    turn = _turn(service, turn_id)
    if isinstance(turn, JSONResponse):
        return turn
    last = request.headers.get("last-event-id", "")
    start = int(last) + 1 if last.isdigit() else 0
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may hold tokens back
    return StreamingResponse(turn.events.follow(start), media_type="text/event-stream", headers=headers)


@router.post("/api/chat/turns/{turn_id}/stop")
def stop_turn(turn_id: str, service: Service) -> JSONResponse:
    """Ask the turn to stop -> {stopping: true}; {stopping: false} when it had already ended."""
    turn = _turn(service, turn_id)
    if isinstance(turn, JSONResponse):
        return turn
    return JSONResponse({"stopping": turn.stop()})
