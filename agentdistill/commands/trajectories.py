"""`agentdistill trajectories ...`: list, show, export and import recorded runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from agentdistill.agents.factory import AGENTS
from agentdistill.commands.common import emit_json, json_option, settings, table
from agentdistill.memory.trajectories import TrajectoryStore


def _store(ctx: click.Context) -> TrajectoryStore:
    return TrajectoryStore.open(settings(ctx).trajectories_path)


def _filters(agent: str | None, status: str | None, min_score: float | None, suite: str | None) -> dict:
    return {"agent": agent, "status": status, "min_score": min_score, "suite": suite}


_filter_options = [
    click.option("--agent", help=f"Only runs of this agent ({', '.join(AGENTS)})."),
    click.option("--status", type=click.Choice(["running", "ok", "max_steps", "error"]), help="Only this status."),
    click.option("--min-score", type=float, help="Only runs scored at least this (benchmarks fill scores)."),
    click.option("--suite", help="Only runs of this benchmark suite."),
]


def filter_options(fn):  # noqa: ANN001, ANN201 - click decorators are untyped
    for option in reversed(_filter_options):
        fn = option(fn)
    return fn


@click.group(name="trajectories")
def trajectories() -> None:
    """Recorded runs: every model call, tool call and answer of every agent run."""


@trajectories.command(name="list")
@filter_options
@click.option("--limit", type=int, default=50, show_default=True, help="Show at most this many (newest last).")
@json_option
@click.pass_context
def list_runs(ctx: click.Context, agent, status, min_score, suite, limit: int, as_json: bool) -> None:  # noqa: ANN001
    """List runs, oldest first."""
    with _store(ctx) as store:
        found = store.runs(**_filters(agent, status, min_score, suite), with_steps=True)[-limit:]
    if as_json:
        emit_json([{**r.to_dict(), "steps": len(r.steps)} for r in found])
        return
    rows = [
        (
            r.id[:12],
            dt.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M"),
            r.agent,
            r.status,
            "" if r.score is None else f"{r.score:g}",
            r.model_calls,
            r.prompt_tokens + r.completion_tokens,
            (r.question[:50] + "…") if len(r.question) > 50 else r.question,
        )
        for r in found
    ]
    table(f"{len(found)} runs", ["id", "created", "agent", "status", "score", "calls", "tokens", "question"], rows)


@trajectories.command(name="show")
@click.argument("run_id")
@json_option
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run step by step (a unique id prefix is enough)."""
    with _store(ctx) as store:
        run = store.get(run_id)
    if as_json:
        emit_json(run.to_dict())
        return
    click.echo(f"run {run.id}  agent={run.agent}  status={run.status}  score={run.score}  models={run.models}")
    click.echo(f"question: {run.question}")
    for step in run.steps:
        head = f"--- step {step.index} [{step.kind}] node={step.node}"
        if step.kind == "model":
            click.echo(f"{head} role={step.role} tokens={step.prompt_tokens}+{step.completion_tokens} "
                       f"{step.latency_s * 1000:.0f} ms")  # fmt: skip
            click.echo(step.completion or "")
        elif step.kind == "tool":
            click.echo(f"{head} tool={step.tool} args={step.tool_args}")
            click.echo(step.observation or "")
        else:
            click.echo(f"{head} event={step.role} {step.data}")
        if step.error:
            click.echo(f"  error[{step.error.kind}]: {step.error.message}")
    click.echo(f"answer: {run.answer}" + (f"\nerror[{run.error.kind}]: {run.error.message}" if run.error else ""))


@trajectories.command(name="export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@filter_options
@click.pass_context
def export(ctx: click.Context, path: Path, agent, status, min_score, suite) -> None:  # noqa: ANN001
    """Write matching runs to a JSONL file (atomically), one run with its steps per line."""
    with _store(ctx) as store:
        count = store.export_jsonl(path, **_filters(agent, status, min_score, suite))
    click.echo(f"exported {count} runs to {path}")


@trajectories.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_(ctx: click.Context, path: Path) -> None:
    """Add runs from a JSONL export; runs already present are skipped. A bad line adds nothing."""
    with _store(ctx) as store:
        added, skipped = store.import_jsonl(path)
    click.echo(f"imported {added} runs from {path} ({skipped} already present)")
