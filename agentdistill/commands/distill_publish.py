"""`distill publish`: a finished `distill run` becomes `student:NAME` (adapter + model card)."""

from __future__ import annotations

from pathlib import Path

import click

from agentdistill.commands.common import emit_json, table


@click.command("publish")
@click.argument("out", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="Student name: `student:NAME` loads it, e.g. recbot-parser-135m.")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of students (default: <home>/students; agentdistill/data/students ships it).",
)
@click.option("--description", default="", help="One line for the model card.")
@click.option("--license", "license_", default="", help="License of the adapter (the base's and the data's apply).")
@click.option("--force", is_flag=True, help="Replace a student of that name.")
@click.option(
    "--rank",
    type=click.IntRange(min=1),
    help="Ship the rank-R adapter `distill compress` cut from the run (a --full run: default the only one;"
    " a LoRA run: default its own adapter).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def publish(out: Path, name: str, dest: Path | None, description: str, license_: str, force: bool,
            rank: int | None, as_json: bool) -> None:  # fmt: skip
    """Publish the LoRA student of distill run OUT with a model card written from its plan, data and eval.

    A --full run publishes the adapter `distill compress OUT --rank R` extracted and evaluated; a LoRA run its
    own adapter, or with --rank R the smaller one compress cut from it.
    """
    from agentdistill.distill.workflow.publish import PublishError, publish_student
    from agentdistill.models.students import find_student, students_root, user_students_root

    dest = dest or user_students_root()
    shipped = find_student(name, students_root())
    if shipped is not None and dest.resolve() != students_root().resolve():
        raise PublishError(f"{name!r} is a student shipped with agentdistill: pick another --name")
    card = publish_student(out, name, dest, description=description, license=license_, force=force, rank=rank)
    if as_json:
        emit_json(
            {
                "spec": card.spec,
                "path": str(card.path),
                "base": card.base,
                "agent": card.agent,
                "teacher": card.teacher,
                "dataset": card.dataset,
                "command": card.command,
                "scores": card.scores,
            }
        )
        return
    rows = [(label, s.get("model"), _figure(s)) for label, s in card.scores.items() if label != "paired"]
    table(f"{card.spec} published to {card.path}", ["eval", "model", "held-out score"], rows)
    click.echo(f"reproduce: {card.command}")


def _figure(scores: dict) -> str:
    from agentdistill.models.students import headline_key

    key = headline_key(scores)
    if key is None:
        return "-"
    ci = scores.get("accuracy_ci95") if key == "accuracy" else None
    extra = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    return f"{key} {scores[key]:.3f}{extra} (n={scores.get('n')})"
