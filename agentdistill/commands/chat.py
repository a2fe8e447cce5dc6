"""`agentdistill chat` (a REPL with persisted threads) and `agentdistill ask` (one question, optionally JSON).

Both build the same agent graphs as benchmarks do (agents/factory.py) and record every turn as a run in
the trajectory store. Chat threads live in LangGraph's SqliteSaver at `<home>/threads.db`, next to a
small `chat_threads` table that remembers each thread's agent and first question for `/threads`.
The recbot agent recommends from an item catalog instead of a knowledge base: the shipped Netflix titles
(built into `<home>/catalogs/` on first use) or `--catalog DIR`; the materials agent looks up Materials Project
records: `--materials DIR` (made by `agentdistill materials import`), else MP_API_KEY's live API or the shipped sample.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from langgraph.checkpoint.sqlite import SqliteSaver

from agentdistill.agents.factory import AGENTS, build_agent
from agentdistill.agents.turn import Turn, run_turn
from agentdistill.commands.common import emit_json, json_option, settings
from agentdistill.commands.node_flags import (
    check_fallback_flags,
    default_fallback,
    fallback_setting,
    node_model_options,
    node_specs,
    with_node_models,
)
from agentdistill.config import Settings
from agentdistill.errors import AgentDistillError
from agentdistill.memory.agent_sources import CatalogNeedsRecbot, MaterialsNeedsMaterialsAgent, agent_sources
from agentdistill.memory.threads import ThreadAgentMismatch, ThreadIndex
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import make_chat_model
from agentdistill.trajectory import Recorder, Step

OBSERVATION_LINES = 3  # lines of each tool result shown in the chat; the full text is in the trajectory


def _sources(
    config: Settings, agent: str, kb_name: str, catalog_dir: Path | None, materials_dir: Path | None
) -> dict[str, Any]:
    try:
        return agent_sources(config, agent, kb_name, catalog_dir, say=lambda text: click.echo(text, err=True),
                             materials_dir=materials_dir)  # fmt: skip
    except (CatalogNeedsRecbot, MaterialsNeedsMaterialsAgent) as exc:  # a flag that does not fit the agent: exit 2
        raise click.UsageError(str(exc)) from None


def recommended_titles(store: TrajectoryStore, run_id: str) -> list[dict[str, str]]:
    """The ids and summaries recbot recommended in run `run_id` (from its recorded turn event)."""
    run = store.get(run_id)
    for step in reversed(run.steps):
        if step.kind == "event" and step.role == "recbot_turn":
            picks = step.data.get("picks") or []
            return [{"id": p["id"], "summary": p["summary"]} for p in picks]
    return []


class EchoRecorder(Recorder):
    """A Recorder that also hands each step to `on_step` as it lands, so the chat can show tool calls live."""

    def __init__(self, store: TrajectoryStore | None, *, agent: str, on_step: Callable[[Step], None]) -> None:
        super().__init__(store, agent=agent)
        self.on_step = on_step

    def record(self, **fields: Any) -> Step | None:
        step = super().record(**fields)
        if step is not None:
            self.on_step(step)
        return step


_agent_option = click.option("--agent", type=click.Choice(AGENTS), default="react", show_default=True)
_model_option = click.option(
    "--model", "model_spec", help="Model spec, e.g. local:qwen2.5-coder-0.5b (default: config)."
)
_kb_option = click.option(
    "--kb",
    "kb_name",
    default="sample",
    show_default=True,
    help="Knowledge base name under <home>/kb; 'none' for no KB.",
)
_native_option = click.option(
    "--native-tools", is_flag=True, help="react with an openai: model: pick tools through the API's tool calls."
)
_catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="recbot: a catalog directory (`agentdistill catalog import`); default: the shipped Netflix titles.",
)
_materials_option = click.option(
    "--materials",
    "materials_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="materials: a records directory (`agentdistill materials import`); default: MP_API_KEY's live API, "
    "else the shipped sample.",
)
_steps_option = click.option(
    "--max-steps", type=click.IntRange(min=1), help="Model calls per question (agent default)."
)


@click.command()
@click.argument("question")
@_agent_option
@_model_option
@_kb_option
@_catalog_option
@_materials_option
@_steps_option
@_native_option
@node_model_options
@json_option
@click.pass_context
def ask(
    ctx: click.Context, question: str, agent: str, model_spec: str | None, kb_name: str, catalog_dir: Path | None,
    materials_dir: Path | None, max_steps: int | None, native_tools: bool, node_model_flags: tuple[str, ...],
    fallback: bool | None, fallback_samples: int | None, fallback_agreement: float | None, as_json: bool,
) -> None:  # fmt: skip
    """Ask one question and print the answer (exit 1 when the agent ends without one)."""
    config = settings(ctx)
    native = _native(agent, native_tools)
    nodes = node_specs(agent, node_model_flags)
    check_fallback_flags(nodes, fallback, fallback_samples, fallback_agreement)
    policy = fallback_setting(fallback, fallback_samples, fallback_agreement)
    model = with_node_models(
        agent, make_chat_model(model_spec or config.model, config.model_options()), nodes,
        default_fallback() if policy is None else policy, lambda spec: make_chat_model(spec, config.model_options()),
    )  # fmt: skip
    with TrajectoryStore.open(config.trajectories_path) as store:
        recorder = Recorder(store, agent=agent, meta={"interface": "ask"})
        graph = build_agent(
            agent, model, recorder=recorder, max_steps=max_steps,
            **_sources(config, agent, kb_name, catalog_dir, materials_dir), **native,
        )  # fmt: skip
        turn = run_turn(graph, store, question)
        picks = recommended_titles(store, turn.run_id) if agent == "recbot" else None
    if as_json:
        emit_json(turn.to_json() if picks is None else {**turn.to_json(), "recommended": picks})
    elif turn.status == "ok":
        click.echo(turn.answer)
    else:
        guess = f" (best guess: {turn.answer})" if turn.answer else ""
        click.echo(f"[{turn.status}] {turn.error or 'no answer'}{guess}", err=True)
    if turn.status != "ok":
        ctx.exit(1)


def _native(agent: str, native_tools: bool) -> dict[str, Any]:
    if not native_tools:
        return {}
    if agent != "react":
        raise click.UsageError(
            f"--native-tools is a react option; the {agent} agent writes code or plans, not tool calls."
        )
    return {"tool_calling": "native"}


class ChatPrinter:
    """Writes streamed tokens and recorded tool calls to the terminal; `quiet` shows only answers."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.at_line_start = True

    def token(self, text: str) -> None:
        if not self.quiet and text:
            click.secho(text, nl=False, dim=True)
            self.at_line_start = text.endswith("\n")

    def step(self, step: Step) -> None:
        if self.quiet:
            return
        self.newline()
        if step.kind == "tool":
            args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in (step.tool_args or {}).items())
            click.secho(f"  -> {step.tool}({args})", fg="cyan")
            lines = (step.observation or "").splitlines() or [""]
            more = f" ... ({len(lines) - OBSERVATION_LINES} more lines)" if len(lines) > OBSERVATION_LINES else ""
            for i, line in enumerate(lines[:OBSERVATION_LINES]):
                tail = more if i == OBSERVATION_LINES - 1 else ""
                click.secho(f"     {line[:200]}{tail}", fg="red" if step.error else None, dim=not step.error)
        elif step.kind == "event":
            click.secho(f"  . {step.role}: {json.dumps(step.data, ensure_ascii=False, default=str)[:200]}", dim=True)

    def newline(self) -> None:
        if not self.at_line_start:
            click.echo()
            self.at_line_start = True

    def turn(self, turn: Turn) -> None:
        self.newline()
        if turn.status == "ok":
            click.secho(turn.answer if self.quiet else f"answer: {turn.answer}", bold=not self.quiet)
        else:
            guess = f" (best guess: {turn.answer})" if turn.answer else ""
            click.secho(f"[{turn.status}] {turn.error or 'no answer'}{guess}", fg="yellow")
        if not self.quiet:
            tokens = turn.prompt_tokens + turn.completion_tokens
            click.secho(
                f"  run {turn.run_id[:12]} | {turn.steps} model calls | {turn.tool_calls} tool calls | "
                f"{tokens} tokens | {turn.latency_s:.1f} s",
                dim=True,
            )


@click.command()
@_agent_option
@_model_option
@_kb_option
@_catalog_option
@_materials_option
@click.option("--thread", "thread_id", help="Resume this thread (see /threads); a new id starts a thread by that name.")
@click.option("--quiet", is_flag=True, help="Show only answers: no streamed reasoning, no tool calls.")
@_steps_option
@_native_option
@click.pass_context
def chat(
    ctx: click.Context, agent: str, model_spec: str | None, kb_name: str, catalog_dir: Path | None,
    materials_dir: Path | None, thread_id: str | None, quiet: bool, max_steps: int | None, native_tools: bool,
) -> None:  # fmt: skip
    """Talk to an agent. Threads persist across restarts; commands: /new, /threads, /exit."""
    config = settings(ctx)
    native = _native(agent, native_tools)
    thread = thread_id or uuid.uuid4().hex[:8]
    index = ThreadIndex(config.threads_path)
    owner = index.agent_of(thread)
    if owner is not None and owner != agent:
        index.close()
        raise ThreadAgentMismatch(thread, owner, agent)
    model = make_chat_model(model_spec or config.model, config.model_options())
    printer = ChatPrinter(quiet)
    conn = sqlite3.connect(config.threads_path, check_same_thread=False, timeout=30)
    try:
        with TrajectoryStore.open(config.trajectories_path) as store:
            recorder = EchoRecorder(store, agent=agent, on_step=printer.step)
            graph = build_agent(
                agent, model, recorder=recorder, checkpointer=SqliteSaver(conn), max_steps=max_steps,
                on_token=printer.token, **_sources(config, agent, kb_name, catalog_dir, materials_dir), **native,
            )  # fmt: skip
            turns = index.turns(thread)
            state = f"resumed, {turns} earlier turns" if turns else "new"
            click.echo(f"agentdistill chat | {agent} | {model.spec} | thread {thread} ({state}) | /new /threads /exit")
            _repl(graph, store, index, agent, thread, printer)
    finally:
        conn.close()
        index.close()


def _repl(
    graph: Any, store: TrajectoryStore, index: ThreadIndex, agent: str, thread: str, printer: ChatPrinter
) -> None:
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        question = line.strip()
        if not question:
            continue
        if question in ("/exit", "/quit"):
            return
        if question == "/new":
            thread = uuid.uuid4().hex[:8]
            click.echo(f"new thread {thread}")
        elif question == "/threads":
            _print_threads(index, thread)
        elif question.startswith("/"):
            click.echo(f"unknown command {question!r}: use /new, /threads or /exit")
        else:
            try:
                turn = run_turn(graph, store, question, {"configurable": {"thread_id": thread}})
            except AgentDistillError as exc:  # a failed turn (endpoint down, ...) is recorded; the chat goes on
                printer.newline()
                click.secho(f"error: {exc}", fg="red")
                continue
            except KeyboardInterrupt:  # Ctrl-C stops this turn only; the run is recorded as interrupted
                printer.newline()
                click.secho("interrupted", fg="yellow")
                continue
            index.add_turn(thread, agent, question)
            printer.turn(turn)


def _print_threads(index: ThreadIndex, current: str) -> None:
    rows = index.rows()
    if not rows:
        click.echo("no threads yet")
    for thread_id, agent, first, turns, updated in rows:
        mark = "*" if thread_id == current else " "
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(updated))
        click.echo(f"{mark} {thread_id}  {agent:<7} {turns:>3} turns  {when}  {first[:70]}")
