"""Helpers shared by the CLI commands: settings from the click context, JSON output, tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from agentdistill.config import Settings


def settings(ctx: click.Context) -> Settings:
    """The Settings loaded once by the top-level group (flags > env > config file)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):  # a command group invoked on its own (tests): load defaults
        from agentdistill.config import load_settings

        obj = load_settings()
        ctx.find_root().obj = obj
    return obj


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a readable table on stdout (plain text when stdout is not a terminal)."""
    grid = Table(title=title, show_lines=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160).print(grid)


def parse_field(text: str) -> tuple[str, str]:
    """One `KEY=VALUE` flag value (`--field`, `--option`), both sides stripped and non-empty."""
    ours, sep, theirs = text.partition("=")
    if not sep or not ours.strip() or not theirs.strip():
        raise click.BadParameter(f"{text!r}: write OURS=THEIRS, e.g. --field answer=gold", param_hint="--field")
    return ours.strip(), theirs.strip()


def parse_option(text: str) -> tuple[str, Any]:
    """One `--option KEY=VALUE` (bench run, distill run): VALUE is JSON when it parses, else the bare word."""
    key, value = parse_field(text)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare word such as `native`


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
