"""The `agentdistill` command line: settings are loaded once here and passed down; errors become one line."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from agentdistill import __version__
from agentdistill.commands.bench import bench
from agentdistill.commands.catalog import catalog
from agentdistill.commands.chat import ask, chat
from agentdistill.commands.demo import demo
from agentdistill.commands.distill import distill
from agentdistill.commands.engine import engine
from agentdistill.commands.kb import kb
from agentdistill.commands.materials import materials
from agentdistill.commands.models import models
from agentdistill.commands.serve import serve
from agentdistill.commands.trajectories import trajectories
from agentdistill.commands.ui import ui
from agentdistill.config import load_settings
from agentdistill.errors import AgentDistillError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="agentdistill", message="%(prog)s %(version)s")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="TOML config file.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Data dir (default $AGENTDISTILL_HOME).")
@click.option("--device", help="auto | cpu | cuda | cuda:N for local models.")
@click.option("--dtype", help="auto | float32 | bfloat16 | float16 for local models.")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, home: Path | None, device: str | None, dtype: str | None,
        debug: bool) -> None:  # fmt: skip
    """agentdistill: chat with tool-using agents, benchmark them, distill them into small students."""
    ctx.obj = load_settings(config_file=config_file, flags={"home": home, "device": device, "dtype": dtype})


@cli.command()
def version() -> None:
    """Print the agentdistill version."""
    click.echo(f"agentdistill {__version__}")


for group in (chat, ask, bench, catalog, demo, distill, engine, kb, materials, models, serve, trajectories, ui):
    cli.add_command(group)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: a stopped job winds down as after Ctrl-C (runs finished, files whole)."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def quiet_library_bars() -> None:
    """No "Loading weights" bars from transformers or sentence-transformers: a load takes seconds and its bar
    lands in the middle of a streamed answer; our own progress reports the long work. HF_HUB_DISABLE_PROGRESS_BARS=0
    in the environment brings them back."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] != "0":  # read at its import
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: user-fixable errors print one line and exit 2; --debug shows the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminated)  # `serve` installs uvicorn's own handlers while it serves
    quiet_library_bars()
    try:
        code = cli.main(args=args, prog_name="agentdistill", standalone_mode=False)
        if isinstance(code, int) and code != 0:  # ctx.exit(N): click returns N instead of exiting with it
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt) as exc:
        terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated)  # click wraps it in Abort
        click.echo("terminated" if terminated else "aborted", err=True)
        sys.exit(128 + signal.SIGTERM if terminated else 130)
    except AgentDistillError as exc:
        if "--debug" in args:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
