"""One way to run an agent on a suite's items: which graph each item gets, how it is scored, and what it needs.

`bench run` and `distill run` (its collect and eval stages) both call `run_suite`, so a student is measured in
exactly the graph, with the tools, metric and simulated user its teacher was collected and evaluated with:
- a recommendation suite plays each item as a session with a simulated user (one recbot graph per session,
  with its own memory), scored by the episode;
- every other suite builds the agent over the suite's knowledge store or records store (codeact and materials:
  a sandbox with sympy preloaded; each run opens and closes its own session of it) and scores the answer with
  the suite's metric.
The callers choose the model, the run directory and the runner's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentdistill.agents.factory import SANDBOXED, build_agent, metric_options
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.metrics import METRICS
from agentdistill.benchmarks.results import RunDir
from agentdistill.benchmarks.runner import RunnerConfig, RunSummary, run_benchmark
from agentdistill.benchmarks.suites.rec_setup import UserModel, rec_episode, session_graph
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import ChatModel
from agentdistill.trajectory import Recorder

if TYPE_CHECKING:
    from agentdistill.memory.catalog import Catalog
    from agentdistill.memory.knowledge import KnowledgeStore
    from agentdistill.memory.materials import MaterialsStore


@dataclass(frozen=True)
class SuiteAgent:
    """The agent side of a suite run: which graph, its options, and what it answers from."""

    suite: Suite
    agent: str  # react | codeact | lag | reader | cot | recbot (rec suites)
    options: Mapping[str, Any] = field(default_factory=dict)  # `--option` values; rec suites: the user's too
    max_steps: int | None = None  # model calls per item (None: the agent's default)
    kb: KnowledgeStore | None = None  # what the QA agents search
    catalog: Catalog | None = None  # what recbot recommends from (rec suites)
    materials: MaterialsStore | None = None  # what the materials agent looks up (records suites)

    def graph_options(self) -> dict[str, Any]:
        """The options the graph is built with: the agent's own plus what the suite's metric implies."""
        return metric_options(self.agent, self.suite.metric, self.options)


def run_suite(
    run_dir: RunDir,
    items: Sequence[Item],
    setup: SuiteAgent,
    model: ChatModel,
    store: TrajectoryStore,
    runner: RunnerConfig,
    *,
    model_spec: str,
    user_model: UserModel | None = None,
    prices: Mapping[str, Any] | None = None,
) -> RunSummary:
    """Run `setup`'s agent with `model` on the pending items of `run_dir`; resumable as `run_benchmark` is.

    `model_spec` is the spec the runs record (the user's, whatever engine runs it); `user_model` turns a
    `user_model` option of a rec suite into the LLM user's model (default: `model`).
    """
    make_graph, metric, episode = _graphs(setup, model, user_model or (lambda spec: model))
    return run_benchmark(run_dir, items, make_graph=make_graph, store=store, metric=metric, episode=episode,
                         config=runner, model_spec=model_spec, prices=prices)  # fmt: skip


def _graphs(setup: SuiteAgent, model: ChatModel, user_model: UserModel) -> tuple[Callable[[Recorder], Any], Any, Any]:
    """(graph per recorder, metric or None, episode or None) for the suite's kind of item."""
    if setup.suite.episode is not None and setup.catalog is not None:
        catalog = setup.catalog
        options, episode = rec_episode(setup.suite.episode, catalog, setup.options, user_model)

        def session(recorder: Recorder) -> Any:
            return session_graph(model, recorder, catalog, options)

        return session, None, episode
    sandbox = _sandbox() if setup.agent in SANDBOXED else None
    graph_opts = setup.graph_options()

    def graph(recorder: Recorder) -> Any:
        return build_agent(setup.agent, model, kb=setup.kb, recorder=recorder, max_steps=setup.max_steps,
                           sandbox=sandbox, materials=setup.materials, **graph_opts)  # fmt: skip

    return graph, METRICS[setup.suite.metric], None


def _sandbox() -> Any:
    # imported here: only the code agent starts sandbox workers. A PythonSandbox holds no process of its own
    # (each run opens a session and the graph closes it), so nothing is left to close after the run.
    from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig

    return PythonSandbox(SandboxConfig(), preamble="import sympy")
