"""`agentdistill demo`: the embedded default job — an agent answers real questions from the shipped sample KB.

Everything it needs ships with the package (sample HotpotQA passages and questions, packaged models),
so it runs offline on a fresh machine. Each answer is a recorded trajectory, ready for distillation.
"""

from __future__ import annotations

import json
import statistics

import click

from agentdistill.agents.factory import AGENTS, build_agent
from agentdistill.agents.turn import run_turn
from agentdistill.benchmarks.metrics import qa_score
from agentdistill.commands.common import emit_json, json_option, settings, table
from agentdistill.memory.agent_sources import open_kb
from agentdistill.memory.knowledge_bases import sample_questions_path
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import make_chat_model
from agentdistill.paths import atomic_write
from agentdistill.progress import Progress
from agentdistill.trajectory import Recorder


@click.command(name="demo")
@click.option("--agent", type=click.Choice(AGENTS), default="react", show_default=True, help="Which agent answers.")
@click.option("--model", "model_spec", help="Model spec (default: settings.model, the packaged teacher).")
@click.option("--limit", type=int, default=3, show_default=True, help="How many sample questions to ask.")
@click.option("--max-steps", type=int, default=5, show_default=True, help="Step limit per question.")
@json_option
@click.pass_context
def demo(ctx: click.Context, agent: str, model_spec: str | None, limit: int, max_steps: int, as_json: bool) -> None:
    """Answer shipped HotpotQA questions from the shipped sample KB and score the answers (EM/F1)."""
    config = settings(ctx)
    spec = model_spec or config.model
    questions = [json.loads(line) for line in sample_questions_path().read_text(encoding="utf-8").splitlines()]
    questions = questions[: max(0, limit)]
    kb = open_kb(config, "sample")
    click.echo(f"loading {spec} ...", err=True)
    model = make_chat_model(spec, config.model_options())
    store = TrajectoryStore.open(config.trajectories_path)
    graph = build_agent(agent, model, kb=kb, recorder=Recorder(store, agent=agent, meta={"job": "demo"}),
                        max_steps=max_steps)  # fmt: skip
    rows = []
    bar = Progress(len(questions), desc=f"{agent} on sample questions", unit="q", enabled=False if as_json else None)
    for item in questions:
        turn = run_turn(graph, store, item["question"])
        score = qa_score(turn.answer, [item["answer"]])
        store.set_score(turn.run_id, float(score.correct), score.as_dict(), suite="sample", item_id=item["id"])
        rows.append({"id": item["id"], "question": item["question"], "gold": item["answer"], "answer": turn.answer,
                     "status": turn.status, "em": score.em, "f1": round(score.f1, 3), "calls": turn.steps,
                     "tokens": turn.prompt_tokens + turn.completion_tokens, "seconds": round(turn.latency_s, 1),
                     "run_id": turn.run_id})  # fmt: skip
        bar.update()
    bar.close()
    summary = {
        "agent": agent, "model": spec, "questions": len(rows),
        "em": round(statistics.fmean(r["em"] for r in rows), 3) if rows else 0.0,
        "f1": round(statistics.fmean(r["f1"] for r in rows), 3) if rows else 0.0,
        "mean_calls": round(statistics.fmean(r["calls"] for r in rows), 2) if rows else 0.0,
        "mean_seconds": round(statistics.fmean(r["seconds"] for r in rows), 1) if rows else 0.0,
        "trajectories": str(config.trajectories_path),
    }  # fmt: skip
    with atomic_write(config.home / "demo" / "last.json") as out:
        json.dump({"summary": summary, "items": rows}, out, indent=2)
    if as_json:
        emit_json({"summary": summary, "items": rows})
        return
    table(f"{agent} with {spec} on {len(rows)} sample HotpotQA questions",
          ["question", "gold", "answer", "status", "EM", "F1", "calls", "tokens", "s"],
          [[r["question"][:60], r["gold"], (r["answer"] or "")[:40], r["status"], r["em"], r["f1"], r["calls"],
            r["tokens"], r["seconds"]] for r in rows])  # fmt: skip
    click.echo(f"EM {summary['em']:.2f}  F1 {summary['f1']:.2f}  mean model calls {summary['mean_calls']}  "
               f"mean {summary['mean_seconds']} s/question  trajectories: {summary['trajectories']}")  # fmt: skip
