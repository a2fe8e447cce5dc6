"""`bench run` (an agent on a suite, resumable) and `bench list` (the suites and whether their data is here).

Everything that can fail on the user's input (suite, data lines, knowledge base, model spec, a resume
whose spec differs) fails before the run directory is created and before any model call, so a typo
never leaves half a run behind.

Recommendation suites (`rec-netflix`, `rec-requests`) run recbot over the packaged catalog, built once per
embedder (`--embedder`); each item is a whole simulated session, and `--option user=rule|llm`,
`user_model=SPEC`, `persona=TEXT` and `max_turns=N` shape the simulated user instead of the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from agentdistill.agents.factory import AGENTS, check_agent, metric_options, prompt_hash
from agentdistill.benchmarks.fallback_rate import FallbackReport, fallback_report, result_runs
from agentdistill.benchmarks.items import Item, items_digest
from agentdistill.benchmarks.metrics import METRICS
from agentdistill.benchmarks.results import RunDir, RunSpec
from agentdistill.benchmarks.runner import RunnerConfig, RunSummary
from agentdistill.benchmarks.suite_run import SuiteAgent, run_suite
from agentdistill.benchmarks.suites.kb_cache import suite_kb
from agentdistill.benchmarks.suites.materials_setup import suite_materials
from agentdistill.benchmarks.suites.rec_metrics import rec_rows, rec_summary
from agentdistill.benchmarks.suites.rec_setup import suite_catalog
from agentdistill.benchmarks.suites.registry import (
    SUITES,
    DataDirRequired,
    get_suite,
    load_items,
    suite_path,
    user_suite,
    with_path,
)
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.commands.common import emit_json, json_option, parse_field, parse_option, settings, table
from agentdistill.commands.node_flags import (
    check_fallback_flags,
    default_fallback,
    fallback_setting,
    node_model_options,
    node_specs,
    student_specs,
    with_node_models,
)
from agentdistill.config import Settings
from agentdistill.errors import AgentDistillError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import make_chat_model
from agentdistill.models.base import ChatModel
from agentdistill.models.engine_model import ENGINE_MODES, open_model

# what RunSpec.same_work compares
SPEC_FIELDS = ("suite", "agent", "model", "item_ids", "seed", "max_steps", "options", "kb", "embedder", "node_models",
               "fallback")  # fmt: skip


class ResumeMismatch(AgentDistillError):
    def __init__(self, run_dir: Path, field: str, stored: Any, asked: Any) -> None:
        shown = {"item_ids": lambda v: f"{len(v)} items starting {v[:3]}"}.get(field, repr)
        super().__init__(
            f"{run_dir} was started with {field} = {shown(stored)}, not {shown(asked)}: resume with the run's own "
            f"settings (run.json), or start a new run in another --run-dir."
        )


@click.command("run")
@click.option("--suite", "suite_name", help="Suite name (`bench list`); with --data, the name to give that file.")
@click.option("--data", "data_file", type=click.Path(dir_okay=False, path_type=Path), help="A user JSONL file.")
@click.option("--metric", type=click.Choice(sorted(METRICS)), default="qa", show_default=True, help="For --data.")
@click.option("--field", "fields", multiple=True, metavar="OURS=THEIRS", help="For --data: map a field, repeatable.")
@click.option("--agent", type=click.Choice(AGENTS), help="Agent (default: the suite's).")
@click.option("--model", "model_spec", help="Model spec, e.g. openai:gpt-4o-mini (default: config).")
@click.option("--limit", type=click.IntRange(min=1), help="Run only the first N items (after --seed shuffling).")
@click.option("--seed", type=int, help="Shuffle the items with this seed before --limit (default: file order).")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True, help="Items in flight.")
@click.option("--item-timeout", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              help="Seconds per item before it is recorded as a timeout.")  # fmt: skip
@click.option("--max-steps", type=click.IntRange(min=1), help="Model calls per item (default: suite, then agent).")
@click.option("--kb", "kb_name", help="Knowledge base name for suites that use a named KB (e.g. bamboogle).")
@click.option("--embedder", help="Embedder spec for the suite's pooled-context KB (default: the KB default).")
@click.option(
    "--option",
    "agent_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Agent option, repeatable; VALUE is JSON when it parses (e.g. sag_n=4).",
)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: <home>/bench/<suite>-...")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir: only unfinished items run.")
@click.option("--engine", "engine_mode", type=click.Choice(ENGINE_MODES), default="auto", show_default=True,
              help="local:/gguf: models: auto = a llama-server engine with --concurrency slots when that is > 1; "
                   "server = always; inproc = in this process.")  # fmt: skip
@click.option(
    "--engine-slots",
    type=click.IntRange(min=1),
    help="Slots of the engine (default: --concurrency); fewer slots than items in flight keep them busy.",
)
@click.option("--label", help="Name shown for this run in reports (default: agent/model).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Benchmark data root (config).")
@node_model_options
@json_option
@click.pass_context
def run(
    ctx: click.Context, suite_name: str | None, data_file: Path | None, metric: str, fields: tuple[str, ...],
    agent: str | None, model_spec: str | None, limit: int | None, seed: int | None, concurrency: int,
    item_timeout: float, max_steps: int | None, kb_name: str | None, embedder: str | None,
    agent_options: tuple[str, ...], run_dir: Path | None,
    resume: bool, engine_mode: str, engine_slots: int | None, label: str | None, data_dir: Path | None,
    node_model_flags: tuple[str, ...], fallback: bool | None, fallback_samples: int | None,
    fallback_agreement: float | None, as_json: bool,
) -> None:  # fmt: skip
    """Run an agent on a benchmark suite; results land in a run directory that `bench report` reads.

    With --node-model NAME=SPEC, that student answers the agent's NAME role or node and --model the rest (and,
    with --fallback, the calls whose student reply does not parse); the summary then shows the fallback rate.
    """
    config = settings(ctx)
    if resume and run_dir is None:
        raise click.UsageError("--resume continues an existing run: pass its --run-dir.")
    suite = _resolve_suite(suite_name, data_file, metric, fields, agent, kb_name)
    stored = RunDir.open(run_dir, repair=True) if resume and run_dir is not None else None
    base = stored.spec if stored is not None else None
    agent = check_agent(agent or (base.agent if base else suite.agent))
    options = dict(parse_option(o) for o in agent_options) or None
    _check_episode_options(suite, agent, options if options is not None else (base.options if base else {}))
    chosen_embedder = embedder if embedder is not None else (base.embedder if base else None)
    catalog = suite_catalog(suite, config.home, chosen_embedder, config.torch_device)
    # every line validated: bad data fails before any call
    items = load_items(suite, data_dir or config.data_dir, catalog=catalog)
    asked = {"agent": agent, "model": model_spec, "seed": seed, "max_steps": max_steps, "label": label,
             "kb": kb_name, "embedder": embedder, "options": options,
             "node_models": node_specs(agent, node_model_flags) or None,
             "fallback": fallback_setting(fallback, fallback_samples, fallback_agreement)}  # fmt: skip
    spec = _spec(suite, items, asked, limit=limit, base=base, config=config)
    check_fallback_flags(spec.node_models, fallback, fallback_samples, fallback_agreement)
    if stored is not None:
        _check_same_work(stored, spec)
    kb = suite_kb(suite, items, config.kb_root, kb_name=spec.kb, embedder=spec.embedder, device=config.torch_device)
    records = suite_materials(suite, data_dir or config.data_dir, config.home, spec.embedder, config.torch_device)
    with contextlib.ExitStack() as stack:

        def opened(chosen: str) -> ChatModel:
            return stack.enter_context(
                open_model(chosen, config.model_options(), concurrency=concurrency, engine=engine_mode,  # type: ignore[arg-type]
                           home=config.home, say=lambda m: click.echo(f"agentdistill: {m}", err=True),
                           slots=engine_slots)
            )  # fmt: skip

        model = with_node_models(agent, opened(spec.model), spec.node_models, spec.fallback, opened)
        _run(ctx, config, suite, spec, stored, run_dir, items, (kb, catalog, records), model, agent, concurrency,
             item_timeout, as_json)  # fmt: skip


def _run(
    ctx: click.Context, config: Settings, suite: Suite, spec: RunSpec, stored: RunDir | None, run_dir: Path | None,
    items: Sequence[Item], sources: tuple[Any, Any, Any], model: ChatModel, agent: str, concurrency: int,
    item_timeout: float, as_json: bool,
) -> None:  # fmt: skip
    target = stored or RunDir.create(run_dir or _default_run_dir(config, spec), spec)
    click.echo(f"run dir: {target.path} ({len(target.pending_ids())} of {len(spec.item_ids)} items to run)", err=True)
    kb, catalog, records = sources
    setup = SuiteAgent(suite, agent, dict(target.spec.options), max_steps=spec.max_steps, kb=kb, catalog=catalog,
                       materials=records)  # fmt: skip
    shown = setup.options
    if suite.episode is not None:  # what the model is shown: the agent's options without the simulated user's
        from agentdistill.benchmarks.suites.rec_episode import split_options

        shown = split_options(setup.options)[1]
    meta = {"prompt_hash": prompt_hash(agent, metric_options(agent, suite.metric, shown))}
    runner = RunnerConfig(concurrency=concurrency, item_timeout_s=item_timeout, progress=None, seed=spec.seed,
                          run_meta=meta)  # fmt: skip

    def user_model(user_spec: str | None) -> ChatModel:
        return make_chat_model(user_spec, config.model_options()) if user_spec else model

    with TrajectoryStore.open(config.trajectories_path) as store:
        try:
            summary = run_suite(target, items, setup, model, store, runner, model_spec=spec.model,
                                user_model=user_model, prices=config.prices)  # fmt: skip
        except KeyboardInterrupt:
            done, total = len(target.done_ids()), len(spec.item_ids)
            again = f"agentdistill bench run --suite {suite.name} --run-dir {target.path} --resume"
            click.echo(f"\ninterrupted after {done} of {total} items; continue with `{again}`", err=True)
            raise  # the entry point exits 130 (Ctrl-C) or 143 (SIGTERM)
        nodes = None
        if spec.node_models:
            nodes = fallback_report(result_runs(store, target.results()), teacher=spec.model,
                                    students=student_specs(model, spec.node_models), prices=config.prices)  # fmt: skip
    rec = rec_summary(target.results()) if suite.episode is not None else {}
    if as_json:
        out = {"run_dir": str(target.path), "name": target.spec.name, "summary": {**summary.as_dict(), **rec}}
        emit_json({**out, "node_models": nodes.as_dict()} if nodes else out)
    else:
        _print_summary(target, summary, rec, nodes)


@click.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Benchmark data root (config).")
@json_option
@click.pass_context
def list_suites(ctx: click.Context, data_dir: Path | None, as_json: bool) -> None:
    """List the benchmark suites: loader, default agent, metric, knowledge base, and whether the data is here."""
    root = data_dir or settings(ctx).data_dir
    rows = []
    for suite in SUITES.values():
        path = _data_path(suite, root)
        kb = suite.kb if suite.kb != "named" else f"named: {suite.kb_name or 'pass --kb'}"
        rows.append({"name": suite.name, "loader": suite.loader, "agent": suite.agent, "metric": suite.metric,
                     "kb": kb, "available": path is not None and path.is_file(),
                     "path": str(path) if path is not None else f"<data dir>/{suite.path}"})  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    columns = ["name", "loader", "agent", "metric", "kb", "available", "path"]
    table(None, columns, [[("yes" if r[c] else "no") if c == "available" else r[c] for c in columns] for r in rows])
    if root is None and not all(r["available"] for r in rows):
        click.echo(
            "Set --data-dir or `data_dir = ...` in config.toml to use the suites read from a data dir.", err=True
        )


def _check_episode_options(suite: Suite, agent: str, options: Mapping[str, Any]) -> None:
    """An episode suite runs recbot, and its simulated user's settings are valid (checked before anything runs)."""
    if suite.episode is None:
        return
    if agent != "recbot":
        raise click.UsageError(f"suite {suite.name} recommends catalog titles: run it with --agent recbot.")
    from agentdistill.benchmarks.suites.rec_episode import split_options

    split_options(options)  # raises BadEpisodeOption naming the option


def _data_path(suite: Suite, data_dir: Path | None) -> Path | None:
    try:
        return suite_path(suite, data_dir)
    except DataDirRequired:
        return None


def _resolve_suite(
    name: str | None, data_file: Path | None, metric: str, fields: Sequence[str], agent: str | None, kb_name: str | None
) -> Suite:
    if data_file is None:
        if name is None:
            raise click.UsageError("pass --suite NAME (see `agentdistill bench list`) or --data FILE.")
        if name not in SUITES and name.endswith(".jsonl") and Path(name).is_file():
            data_file, name = Path(name), None  # `--suite ./mine.jsonl`, as UnknownSuite suggests
        else:
            return get_suite(name)
    if name in SUITES and not fields:  # a built-in suite's loader on the user's copy (e.g. bamboogle)
        return with_path(get_suite(name), str(data_file.resolve()))
    mapping = dict(parse_field(f) for f in fields)
    suite = user_suite(data_file.resolve(), metric=metric, kb_name=kb_name, fields=mapping, agent=agent or "react")
    return dataclasses.replace(suite, name=name) if name else suite


def _spec(
    suite: Suite, items: Sequence[Item], asked: dict[str, Any], *, limit: int | None, base: RunSpec | None,
    config: Settings,
) -> RunSpec:  # fmt: skip
    """The run's spec from the flags; on --resume an omitted flag means "as the run was started"."""
    if base is not None and limit is None and asked["seed"] is None:
        item_ids = base.item_ids
    else:
        item_ids = tuple(item.id for item in _select(items, limit=limit, seed=asked["seed"]))
    fresh = {"model": config.model, "seed": 0, "max_steps": suite.max_steps, "label": None, "kb": None,
             "embedder": None, "options": {}, "node_models": {}, "fallback": default_fallback()}  # fmt: skip
    default = dataclasses.asdict(base) if base is not None else fresh
    chosen = {key: default[key] if value is None else value for key, value in asked.items() if key != "agent"}
    if not chosen["node_models"]:
        chosen["fallback"] = {}  # nothing to fall back from
    by_id = {item.id: item for item in items}
    digest = items_digest([by_id[i] for i in item_ids]) if all(i in by_id for i in item_ids) else None
    return RunSpec(suite=suite.name, agent=asked["agent"], item_ids=item_ids, items_sha256=digest, **chosen)


def _select(items: Sequence[Item], *, limit: int | None, seed: int | None) -> list[Item]:
    chosen = list(items)
    if seed is not None:
        random.Random(seed).shuffle(chosen)
    return chosen[:limit] if limit is not None else chosen


def _check_same_work(stored: RunDir, spec: RunSpec) -> None:
    if stored.spec.same_work(spec):
        return
    old, new = stored.spec.to_dict(), spec.to_dict()
    field = next((k for k in SPEC_FIELDS if old[k] != new[k]), None)
    if field is None:  # same ids, other contents: the data file was edited under the same name
        raise AgentDistillError(
            f"{stored.path}: the data of its {len(spec.item_ids)} items changed since the run started (a question or"
            " answer differs under the same id): finishing it would mix two datasets; start a new run in another"
            " --run-dir."
        )
    raise ResumeMismatch(stored.path, field, old[field], new[field])


def _default_run_dir(config: Settings, spec: RunSpec) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return config.bench_root / f"{spec.suite}-{spec.agent}-{stamp}"


def _print_summary(run_dir: RunDir, summary: RunSummary, rec: Mapping[str, Any], nodes: FallbackReport | None) -> None:
    s = summary
    rows: list[tuple[str, Any]] = [
        ("items", s.n), ("accuracy", f"{s.accuracy:.3f} ({s.correct}/{s.n})"), ("EM / F1", f"{s.em:.3f} / {s.f1:.3f}"),
        ("errors / timeouts", f"{s.errors} / {s.timeouts}"), ("max_steps rate", f"{s.max_steps_rate:.3f}"),
        ("steps / item", f"{s.steps_mean:.2f}"), ("tokens / item", f"{s.tokens_mean:.0f}"),
        ("latency p50 / p95", f"{s.latency_p50:.2f} s / {s.latency_p95:.2f} s"), ("cost", f"${s.cost_usd:.4f}"),
    ]  # fmt: skip
    if rec:  # recommendation suites: accuracy is hit@k; these say how it was reached
        rows = [rows[0], rows[1], *rec_rows(rec), *rows[3:]]
    if nodes is not None:
        rows += _node_rows(nodes)
    click.echo(f"{run_dir.spec.name} on {run_dir.spec.suite}")  # a table title would wrap in a narrow table
    table(None, ["", "value"], rows)
    click.echo(f"results: {run_dir.results_path}  (report: agentdistill bench report {run_dir.path})")


def _node_rows(nodes: FallbackReport) -> list[tuple[str, Any]]:
    """The node models' figures: how many calls they were asked, how often the teacher answered instead."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(nodes.fallbacks.items())) or "none"
    return [
        ("node-model calls", f"{nodes.student_calls} of {nodes.calls}"),
        ("fallback rate", f"{nodes.fallback_rate:.3f} ({reasons})"),
        ("teacher share of calls", f"{nodes.teacher_share:.3f}"),
        ("cost by answering model", f"${nodes.cost_usd:.4f} (teacher alone, est.: ${nodes.teacher_cost_usd:.4f})"),
    ]
