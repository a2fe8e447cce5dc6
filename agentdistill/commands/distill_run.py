"""`distill run` (the whole pipeline), `distill collect` and `distill eval` (its first and last stages alone)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import click

from agentdistill.agents.factory import AGENTS
from agentdistill.commands.common import emit_json, parse_option, settings, table
from agentdistill.commands.train_flags import TrainingFlags, pop_training_flags, training_options
from agentdistill.config import Settings
from agentdistill.distill.curate import CHOICE_RULES
from agentdistill.errors import AgentDistillError

if TYPE_CHECKING:
    from agentdistill.distill.workflow.pipeline import Pipeline
    from agentdistill.distill.workflow.plan import DistillPlan

# plan.json fields newer than some saved plans, with the value a plan saved without them meant
ADDED_FIELDS: Mapping[str, Any] = MappingProxyType({"embedder": None, "options": {}, "keep_parse_errors": False,
                                                    "engine": "auto", "roles": [], "min_score": 1.0,
                                                    "min_metrics": {}, "token_exact": True, "attempts": 1,
                                                    "attempt_temperature": 0.7, "choose": "all", "per_question": None,
                                                    "difficulty": []})  # fmt: skip
# how a run executes, not what it computes: a resumed run may change them
EXECUTION_FIELDS = ("concurrency", "engine", "engine_slots", "item_timeout_s")


class PlanMismatch(AgentDistillError):
    def __init__(self, out: Path, field: str, old: Any, new: Any, *, fix: str | None = None) -> None:
        fix = fix or "continue it with the same flags (see its plan.json), or pass another --out."
        super().__init__(f"{out} holds a distillation run with {field} = {old!r}, not {new!r}: {fix}")


def _plan_options(fn: Any) -> Any:
    options = [
        click.option("--agent", type=click.Choice(AGENTS), default="codeact", show_default=True),
        click.option("--suite", default="gsm8k-sample", show_default=True, help="Eval suite (`bench list`)."),
        click.option("--teacher", help="Teacher model spec (default: config `model`)."),
        click.option("--student", help="Student base spec, local:NAME or hf:DIR (default: config `student`)."),
        click.option("--train-limit", type=click.IntRange(min=1), default=20, show_default=True),
        click.option("--eval-limit", type=click.IntRange(min=1), default=10, show_default=True),
        click.option("--method", type=click.Choice(["sft", "kd", "redi"]), default="sft", show_default=True),
        click.option("--kd-teacher", help="For --method kd: a local teacher sharing the student's tokenizer."),
        click.option("--kd-kind", type=click.Choice(["forward", "reverse", "taid"]), default="forward"),
        click.option("--max-steps", type=click.IntRange(min=1), help="Agent model calls per item."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                     help="Agent option, repeatable (VALUE is JSON when it parses); rec suites also take the "
                          "simulated user's: user=rule|llm, user_model=SPEC (default: the teacher), max_turns=N."),
        click.option("--embedder", help="Embedder spec of the suite's KB or item catalog (default: packaged MiniLM)."),
        click.option("--keep-parse-errors", is_flag=True,
                     help="Also train on correct runs that recovered from a malformed reply (no loss on that reply)."),
        click.option("--roles", help="Comma-separated model roles whose calls become examples (default: all of the "
                                     "agent's; recbot: parser,planner,responder)."),
        click.option("--min-score", type=float, default=1.0, show_default=True,
                     help="Keep runs scored at least this; -1 keeps every score (use with --min-metric)."),
        click.option("--min-metric", "min_metrics", multiple=True, metavar="NAME=VALUE",
                     help="Keep runs whose stored metric is at least VALUE, e.g. turn_parse_accuracy=1 (recbot)."),
        click.option("--token-exact/--no-token-exact", default=True, show_default=True,
                     help="Train the teacher's sampled token ids where its backend recorded them and the student "
                          "shares its tokenizer (--no-token-exact re-tokenises the text, the ablation)."),
        click.option("--attempts", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Teacher attempts per train item: the first greedy, the rest sampled (pass rates for "
                          "--difficulty; several correct runs for --choose)."),
        click.option("--attempt-temperature", type=click.FloatRange(min=0, min_open=True), default=0.7,
                     show_default=True, help="Sampling temperature of attempts 2.."),
        click.option("--choose", type=click.Choice(CHOICE_RULES), default="all", show_default=True,
                     help="Which of a question's correct runs to train on: shortest, fewest_errors, logprob, all."),
        click.option("--per-question", type=click.IntRange(min=1), help="Correct runs kept per question (1 with "
                                                                         "--choose)."),
        click.option("--difficulty", help="Comma-separated pass-rate buckets to train on: easy, medium, hard."),
        click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
                     help="Items in flight; local models then run on a llama-server engine with this many slots."),
        click.option("--engine", type=click.Choice(["auto", "server", "inproc"]), default="auto", show_default=True,
                     help="local:/gguf: models: auto = llama-server when --concurrency > 1 and it is built."),
        click.option("--engine-slots", type=click.IntRange(min=1), help="Engine slots (default: --concurrency)."),
        click.option("--student-runtime", type=click.Choice(["auto", "gguf", "transformers"]), default="auto",
                     show_default=True, help="Evaluate the trained student on llama.cpp (exported f16 GGUF) or HF."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Benchmark data root."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                     help="Default: <home>/distill/<agent>-<suite>."),
        click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON."),
    ]  # fmt: skip
    fn = training_options(fn)  # innermost: listed after the plan's flags in --help
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass(frozen=True)
class PlanFlags:
    """The flags of `distill run/collect/eval` that make the plan (the training ones are TrainingFlags)."""

    agent: str
    suite: str
    teacher: str | None
    student: str | None
    train_limit: int
    eval_limit: int
    method: str
    kd_teacher: str | None
    kd_kind: str
    max_steps: int | None
    options: tuple[str, ...]
    embedder: str | None
    keep_parse_errors: bool
    roles: str | None
    min_score: float
    min_metrics: tuple[str, ...]
    token_exact: bool
    attempts: int
    attempt_temperature: float
    choose: str
    per_question: int | None
    difficulty: str | None
    concurrency: int
    engine: str
    engine_slots: int | None
    student_runtime: str
    data_dir: Path | None
    out: Path | None

    def plan(self, config: Settings, training: TrainingFlags) -> DistillPlan:
        """The DistillPlan these flags ask for; omitted models are the configured teacher and student."""
        from agentdistill.distill.workflow.plan import DistillPlan

        return DistillPlan(
            agent=self.agent, suite=self.suite, teacher=self.teacher or config.model,
            student=self.student or config.student, train_limit=self.train_limit, eval_limit=self.eval_limit,
            method=self.method, kd_teacher=self.kd_teacher, kd_kind=self.kd_kind,  # type: ignore[arg-type]
            max_steps=self.max_steps, concurrency=self.concurrency, engine=self.engine,  # type: ignore[arg-type]
            engine_slots=self.engine_slots, student_runtime=self.student_runtime,  # type: ignore[arg-type]
            train=training.config(config), embedder=self.embedder,
            options=dict(parse_option(o) for o in self.options), keep_parse_errors=self.keep_parse_errors,
            roles=tuple(r.strip() for r in (self.roles or "").split(",") if r.strip()),
            min_score=None if self.min_score < 0 else self.min_score,
            min_metrics={k: float(v) for k, v in (parse_option(m) for m in self.min_metrics)},
            token_exact=self.token_exact, attempts=self.attempts, attempt_temperature=self.attempt_temperature,
            choose=self.choose, per_question=self.per_question,
            difficulty=tuple(d.strip() for d in (self.difficulty or "").split(",") if d.strip()),
        )  # fmt: skip


def _pipeline(config: Settings, kw: dict[str, Any]) -> Pipeline:
    from agentdistill.distill.workflow.pipeline import Pipeline

    training = pop_training_flags(kw)
    flags = PlanFlags(**kw)
    if flags.data_dir is not None:
        config = dataclasses.replace(config, data_dir=flags.data_dir)
    plan = flags.plan(config, training)
    out = flags.out or config.home / "distill" / f"{plan.agent}-{plan.suite}"
    _check_plan(out, plan)
    return Pipeline(plan, config, out, say=lambda text: click.echo(text, err=True))


def _check_plan(out: Path, plan: DistillPlan) -> None:
    from agentdistill.distill.workflow.plan import plan_dict
    from agentdistill.paths import atomic_write

    new = json.loads(json.dumps(plan_dict(plan), default=str))
    path = out / "plan.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        for key in new:
            if key in EXECUTION_FIELDS or old.get(key, ADDED_FIELDS.get(key)) == new[key]:
                continue
            if key == "train" and _same_training(old.get("train") or {}, new["train"]):
                continue
            if key == "attempts" and new[key] > old.get(key, 1) and not (out / "data" / "info.json").exists():
                continue  # more sampled attempts before any dataset was built: they add collect-N dirs
            if key == "train_limit" and new[key] > old[key]:
                if not (out / "data" / "info.json").exists():
                    continue  # more teacher runs before any dataset was built: collection picks up where it stopped
                raise PlanMismatch(out, key, old[key], new[key],
                                   fix=f"its dataset is built from {old[key]} items already; delete {out / 'data'}"
                                       " (and a trained student) to grow it, or pass another --out.")  # fmt: skip
            raise PlanMismatch(out, key, old.get(key, ADDED_FIELDS.get(key)), new[key])
        if new["train_limit"] == old.get("train_limit") and new["attempts"] == old.get("attempts", 1):
            return  # nothing grew: the saved plan stands
    with atomic_write(path) as f:
        json.dump(new, f, indent=2)


def _same_training(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal training settings, ignoring those a resume may change (logging, stopping) and reading a field an
    older plan.json lacks as its default."""
    from agentdistill.distill.train_config import RESUME_FREE, TrainConfig

    defaults = json.loads(json.dumps(TrainConfig().to_dict(), default=str))
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return all(old.get(k, defaults.get(k)) == v for k, v in new.items() if k in known and k not in RESUME_FREE)


def _show(report_md: Path, as_json: bool) -> None:
    data = json.loads((report_md.parent / "compare.json").read_text(encoding="utf-8"))
    if as_json:
        emit_json(data)
        return
    click.echo(report_md.read_text(encoding="utf-8").split("\n## ")[0])  # the title and the side-by-side table
    click.echo(f"full report: {report_md}")


@click.command("run")
@_plan_options
@click.pass_context
def run(ctx: click.Context, as_json: bool, **kw: Any) -> None:
    """Collect teacher trajectories, filter, train the student, then compare teacher, base and trained student."""
    pipeline = _pipeline(settings(ctx), kw)
    _show(pipeline.run(), as_json)


@click.command("collect")
@_plan_options
@click.pass_context
def collect(ctx: click.Context, as_json: bool, **kw: Any) -> None:
    """Stage 1 alone: the teacher answers the train items; its trajectories land in the store, scored."""
    summary = _pipeline(settings(ctx), kw).collect()
    if as_json:
        emit_json(summary.as_dict())
    else:
        table(None, ["", "value"], [("items", summary.n), ("correct", summary.correct),
                                     ("accuracy", f"{summary.accuracy:.3f}")])  # fmt: skip


@click.command("eval")
@_plan_options
@click.option("--student-dir", type=click.Path(file_okay=False, path_type=Path), help="Trained student (merged dir).")
@click.pass_context
def evaluate(ctx: click.Context, as_json: bool, student_dir: Path | None, **kw: Any) -> None:
    """Last stage alone: teacher, base student and (with --student-dir) a trained student on the eval items."""
    pipeline = _pipeline(settings(ctx), kw)
    _show(pipeline.evaluate(student_dir or _trained(pipeline.out)), as_json)


def _trained(out: Path) -> Path | None:
    merged = out / "student" / "merged"
    return merged if merged.is_dir() else None
