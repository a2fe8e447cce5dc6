"""`agentdistill distill dataset`: turn recorded runs into train/val (and negative) JSONL files."""

from __future__ import annotations

from pathlib import Path

import click

from agentdistill.commands.common import emit_json, json_option, settings, table
from agentdistill.distill.curate import CHOICE_RULES, DIFFICULTIES, CurateConfig


@click.command(name="dataset")
@click.option("--agent", required=True, help="Recorded agent whose runs to use (react, codeact, lag, ...).")
@click.option("--model", help="Only runs whose policy model matches this spec or glob, e.g. 'local:qwen*'.")
@click.option("--suite", help="Only runs scored on this benchmark suite.")
@click.option("--min-score", type=float, default=1.0, show_default=True, help="Keep runs scored at least this.")
@click.option("--negatives", is_flag=True, help="Also write failed runs to negatives.jsonl (for --method redi).")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.1, show_default=True,
              help="Share of distinct questions held out for validation.")  # fmt: skip
@click.option(
    "--keep-parse-errors",
    is_flag=True,
    help="Also keep correct runs that recovered from a malformed reply (no loss on that reply).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/val split.")
@click.option("--limit", type=click.IntRange(1), help="Use at most this many runs (oldest first).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Dataset directory.")
@click.option("--prompt-hash", help="Only runs recorded with this prompt hash (see a run's meta).")
@click.option(
    "--token-exact/--no-token-exact",
    default=True,
    show_default=True,
    help="Keep the teacher's sampled token ids where recorded (--no-token-exact: text only).",
)
@click.option("--student", help="Student spec: keep token ids only of calls recorded with its tokenizer (else any).")
@click.option(
    "--choose",
    type=click.Choice(CHOICE_RULES),
    default="all",
    show_default=True,
    help="Which of a question's correct runs to keep: shortest, fewest_errors (tool errors), logprob "
    "(the teacher's mean token log-probability), or all.",
)
@click.option("--per-question", type=click.IntRange(1), help="Correct runs kept per question (1 with --choose).")
@click.option(
    "--difficulty",
    help="Comma-separated buckets of the teacher's pass rate over a question's attempts "
    "to keep: easy (>= 0.75), medium, hard (<= 0.25), unsolved.",
)
@click.option("--allow-mixed", is_flag=True, help="Allow runs of several teachers or prompt versions in one dataset.")
@json_option
@click.pass_context
def dataset(
    ctx: click.Context, agent: str, model: str | None, suite: str | None, min_score: float, negatives: bool,
    val_fraction: float, keep_parse_errors: bool, seed: int, limit: int | None, out: Path, prompt_hash: str | None,
    allow_mixed: bool, token_exact: bool, student: str | None, choose: str, per_question: int | None,
    difficulty: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Select correct runs (no parse errors, no step overflow), convert them to chat examples, split by question.

    Writes OUT/train.jsonl, val.jsonl, negatives.jsonl (with --negatives), OUT/hf (a Hugging Face DatasetDict)
    and info.json, whose `version` names the teacher, the prompt hash, the filters and the data's sha256. Runs of
    two teachers or two prompt versions are refused unless --allow-mixed.
    """
    from agentdistill.distill.data import SelectConfig, build_dataset, reason_label
    from agentdistill.memory.trajectories import TrajectoryStore

    student_tokenizer = None
    if student and token_exact:
        from transformers import AutoTokenizer

        from agentdistill.distill.encoding import student_tokenizer_id
        from agentdistill.models.weights import base_weights
        from agentdistill.paths import cache_dir

        student_tokenizer = student_tokenizer_id(AutoTokenizer.from_pretrained(base_weights(student, cache_dir())))
    select = SelectConfig(agent=agent, model=model, suite=suite, min_score=min_score, limit=limit,
                          drop_parse_errors=not keep_parse_errors, prompt_hash=prompt_hash,
                          allow_mixed=allow_mixed, token_exact=token_exact, student_tokenizer=student_tokenizer,
                          curate=CurateConfig(choose, per_question, _buckets(difficulty)))  # fmt: skip
    with TrajectoryStore.open(settings(ctx).trajectories_path) as store:
        info = build_dataset(store, select, out, val_fraction=val_fraction, seed=seed, negatives=negatives)
    if as_json:
        emit_json(info.to_dict())
        return
    rows: list[tuple[str, object]] = [("runs considered", info.considered)]
    rows += [(f"  dropped: {reason_label(reason, select)}", n) for reason, n in info.dropped.items()]
    rows += [("runs selected", info.runs), ("examples", info.examples), ("duplicates removed", info.duplicates),
             ("train examples", info.train), ("val examples", info.val),
             ("with the teacher's token ids", info.token_exact)]  # fmt: skip
    rows += [(f"questions, {bucket}", n) for bucket, n in info.difficulty.items()]
    rows += [("teacher", ", ".join(info.version.get("teachers", []))),
             ("data sha256", info.version.get("data_sha256", "")[:16])]  # fmt: skip
    if info.negatives is not None:
        rows += [("negative runs", info.negative_runs), ("negative examples", info.negatives),
                 ("negatives left out (question in val)", info.negatives_in_val)]  # fmt: skip
    table(f"dataset {out}", ["", "count"], rows)


def _buckets(raw: str | None) -> tuple[str, ...]:
    buckets = tuple(b.strip() for b in (raw or "").split(",") if b.strip())
    bad = [b for b in buckets if b not in DIFFICULTIES]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: choose from {', '.join(DIFFICULTIES)}", param_hint="--difficulty")
    return buckets
