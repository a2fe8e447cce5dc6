"""`agentdistill distill onpolicy`: the student answers in the agent graph, the teacher scores its own tokens.

Torch and transformers load inside the command, so `--help` stays fast. Running it again with the same --out
skips the finished rounds and resumes a killed one (distill/onpolicy.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agentdistill.agents.factory import AGENTS
from agentdistill.commands.common import emit_json, json_option, parse_option, settings, table
from agentdistill.commands.train_flags import pop_training_flags, training_options


@click.command(name="onpolicy")
@click.option("--agent", type=click.Choice(AGENTS), default="codeact", show_default=True, help="Agent graph.")
@click.option("--suite", default="gsm8k-sample", show_default=True,
              help="Suite whose train items the student answers, scored by its metric (`bench list`).")  # fmt: skip
@click.option("--teacher", required=True,
              help="Local teacher with the student's tokenizer: hf:DIR, a dir or local:NAME.")  # fmt: skip
@click.option("--student", help="Student to start from: hf:DIR, local:NAME, or an adapter dir (continues it)."
              " Default: the configured student.")  # fmt: skip
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rollout -> teacher -> train rounds; more on a rerun continue after the last.")  # fmt: skip
@click.option("--items", "items_per_round", type=click.IntRange(min=1), default=8, show_default=True,
              help="Train items rolled out per round.")  # fmt: skip
@click.option("--train-limit", type=click.IntRange(min=1),
              help="Train items the rounds draw from in turn (default: rounds x items; fewer repeat).")  # fmt: skip
@click.option("--eval-limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="Items held out as `distill run` holds them out for eval: never rolled out.")  # fmt: skip
@click.option("--kd-kind", type=click.Choice(["reverse", "forward", "taid"]), default="reverse", show_default=True,
              help="Divergence to the teacher's top-k; reverse (mode-seeking) is GKD's on-policy choice.")  # fmt: skip
@click.option("--top-k", type=click.IntRange(min=1), default=20, show_default=True,
              help="Teacher tokens cached per position.")  # fmt: skip
@click.option(
    "--reward-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="KDRL: weight of a REINFORCE term on the suite's score (baseline: the round's mean); 0 = pure KD.",
)
@click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Rollouts sample the graph's greedy calls at this; 0 = greedy rollouts.")  # fmt: skip
@click.option("--max-tokens", type=click.IntRange(min=1), help="Cap on the new tokens of every rollout call.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Agent model calls per item.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Agent option, repeatable (VALUE is JSON when it parses).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Rollout sampling, adapter init, data order.")
@click.option("--embedder", help="Embedder spec of the suite's KB (default: packaged MiniLM).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Benchmark data root.")
@training_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run dir.")
@json_option
@click.pass_context
def onpolicy(
    ctx: click.Context, agent: str, suite: str, teacher: str, student: str | None, rounds: int,
    items_per_round: int, train_limit: int | None, eval_limit: int, kd_kind: str, top_k: int,
    reward_weight: float, temperature: float, max_tokens: int | None, max_steps: int | None,
    options: tuple[str, ...], seed: int, embedder: str | None, data_dir: Path | None, out: Path, as_json: bool,
    **kw: Any,
) -> None:  # fmt: skip
    """On-policy distillation: each round the student answers train items in the agent graph (recorded, scored),
    the teacher gives its top-k at every token the student wrote, and the student trains on reverse KL to it
    (plus the task reward with --reward-weight), starting from the previous round's adapter.

    Writes OUT/round-NN/ (rollouts, examples, teacher-topk, train/final) and OUT/rounds.jsonl.
    """
    from agentdistill.benchmarks.suite_run import SuiteAgent
    from agentdistill.benchmarks.suites.kb_cache import suite_kb
    from agentdistill.benchmarks.suites.materials_setup import suite_materials
    from agentdistill.benchmarks.suites.rec_setup import suite_catalog
    from agentdistill.benchmarks.suites.registry import get_suite
    from agentdistill.distill.onpolicy import OnPolicy, OnPolicyConfig
    from agentdistill.distill.workflow.plan import split_items
    from agentdistill.memory.trajectories import TrajectoryStore
    from agentdistill.models import make_chat_model
    from agentdistill.paths import cache_dir

    conf = settings(ctx)
    if conf.threads:
        import torch

        torch.set_num_threads(conf.threads)
    flags = pop_training_flags(kw)
    config = OnPolicyConfig(rounds=rounds, items_per_round=items_per_round, kd_kind=kd_kind, top_k=top_k,  # type: ignore[arg-type]
                            reward_weight=reward_weight, temperature=temperature, max_tokens=max_tokens, seed=seed,
                            train=flags.config(conf, seed=seed))  # fmt: skip
    spec = get_suite(suite)
    data_dir = data_dir or conf.data_dir
    catalog = suite_catalog(spec, conf.home, embedder, conf.torch_device)
    materials = suite_materials(spec, data_dir, conf.home, embedder, conf.torch_device)
    train_items, eval_items = split_items(spec, data_dir, train_limit or rounds * items_per_round, eval_limit,
                                          catalog=catalog)  # fmt: skip
    kb = None
    if spec.episode is None:  # the KB of `distill run`: pooled over its train and eval slices
        kb = suite_kb(spec, [*train_items, *eval_items], conf.kb_root, embedder=embedder, device=conf.torch_device)
    setup = SuiteAgent(spec, agent, dict(parse_option(o) for o in options), max_steps=max_steps, kb=kb,
                       catalog=catalog, materials=materials)  # fmt: skip

    def say(message: str) -> None:
        if not as_json:
            click.echo(f"agentdistill: {message}", err=True)

    def user_model(user_spec: str | None) -> Any:  # a rec suite's LLM user: the teacher unless an option names one
        return make_chat_model(user_spec or teacher, conf.model_options())

    with TrajectoryStore.open(conf.trajectories_path) as store:
        job = OnPolicy(config, student=student or conf.student, teacher=teacher, setup=setup, items=train_items,
                       store=store, out=out, cache=cache_dir(), options=conf.model_options(), say=say,
                       progress=False if as_json else None, user_model=user_model)  # fmt: skip
        results = job.run()
    if as_json:
        emit_json({"out": str(out), "rounds": [r.to_dict() for r in results]})
        return
    rows = [(r.round, f"{r.mean_reward:.3f}", "" if r.kd_loss is None else f"{r.kd_loss:.4g}", r.examples, r.steps)
            for r in results]  # fmt: skip
    table(f"distill onpolicy -> {out}", ["round", "mean reward", "kd loss", "examples", "steps"], rows)
    if results:
        click.echo(f"student: {results[-1].final_dir} (over {job.base})")
