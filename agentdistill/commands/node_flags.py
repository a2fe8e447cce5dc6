"""The per-node student flags of `bench run` and `ask`: --node-model, --fallback, --fallback-samples/-agreement.

`--node-model decompose=hf:./students/lag-decomposer` makes that student answer the calls of LAG's decompose
node while `--model` answers the rest; with `--fallback` (the default) `--model` also answers any call whose
student reply does not parse (or, with `--fallback-samples N`, whose N samples disagree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from agentdistill.agents.fallback_checks import fallback_check, node_models
from agentdistill.commands.common import parse_field
from agentdistill.models.base import ChatModel
from agentdistill.models.fallback import FallbackPolicy, NodeModels

NODE_FLAGS = ("node_model_flags", "fallback", "fallback_samples", "fallback_agreement")


def node_model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The four flags, added to a click command as keyword arguments named in NODE_FLAGS."""
    options = [
        click.option("--node-model", "node_model_flags", multiple=True, metavar="NAME=SPEC",
                     help="A student for one model role or graph node of the agent (e.g. decompose=hf:./s for "
                          "lag's decomposer, parser=... for recbot's parser); --model answers the rest. "
                          "Repeatable."),
        click.option("--fallback/--no-fallback", default=None,
                     help="Let --model answer a call whose node-model reply does not parse (default: on)."),
        click.option("--fallback-samples", type=click.IntRange(min=1), default=None,
                     help="Student samples per call (default 1, greedy); > 1: --model answers when they disagree."),
        click.option("--fallback-agreement", type=click.FloatRange(0, 1, min_open=True), default=None,
                     help="Share of the samples that must agree on one action (default 0.5)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def node_specs(agent: str, flags: Sequence[str]) -> dict[str, str]:
    """NAME -> SPEC of the --node-model flags; an unknown NAME for `agent` raises UnknownNodeName."""
    specs = dict(parse_field(flag) for flag in flags)
    for name in specs:
        fallback_check(agent, name)
    return specs


def fallback_setting(enabled: bool | None, samples: int | None, agreement: float | None) -> dict[str, Any] | None:
    """The run spec's `fallback` field from the flags: {} when off, the policy's fields when on, None when no
    fallback flag was given (a resumed run keeps its own; a new one falls back with the default policy)."""
    if enabled is None and samples is None and agreement is None:
        return None
    if enabled is False:
        return {}
    default = FallbackPolicy()
    policy = FallbackPolicy(samples=samples or default.samples,
                            min_agreement=default.min_agreement if agreement is None else agreement)  # fmt: skip
    return dataclasses.asdict(policy)


def default_fallback() -> dict[str, Any]:
    """The fallback of a new run given node models but no fallback flag: on, with the default policy."""
    return dataclasses.asdict(FallbackPolicy())


def with_node_models(
    agent: str,
    teacher: ChatModel,
    specs: Mapping[str, str],
    fallback: Mapping[str, Any],
    open_model: Callable[[str], ChatModel],
) -> ChatModel:
    """`teacher` alone when no node model is named, else the NodeModels the flags ask for (each spec opened once)."""
    if not specs:
        return teacher
    opened: dict[str, ChatModel] = {}
    for spec in specs.values():
        if spec not in opened:
            opened[spec] = open_model(spec)
    students = {name: opened[spec] for name, spec in specs.items()}
    policy = FallbackPolicy(**fallback) if fallback else None
    return node_models(agent, teacher, students, policy=policy)


def student_specs(model: ChatModel, specs: Mapping[str, str]) -> set[str]:
    """The specs the node models' steps are recorded under: as given, and as the opened models name themselves."""
    named = model.by_name.values() if isinstance(model, NodeModels) else []
    return {*specs.values(), *(getattr(m, "student", m).spec for m in named)}


def check_fallback_flags(node_models: Mapping[str, str], enabled: bool | None, samples: int | None,
                         agreement: float | None) -> None:  # fmt: skip
    """Fallback flags without a node model would do nothing: say so instead of ignoring them."""
    if not node_models and (enabled is not None or samples is not None or agreement is not None):
        raise click.UsageError("--fallback, --fallback-samples and --fallback-agreement apply to node models: "
                               "name one with --node-model NAME=SPEC (e.g. decompose=SPEC for lag).")  # fmt: skip
