"""`build_agent(name, model, ...)`: one agent graph with its default tools, for the CLI, benchmarks and distill.

Each graph file takes tools as a parameter and knows nothing about knowledge bases or sandboxes; this
module is the one place that decides which tools each agent gets by default:
- react: KB `search` + `lookup` (when a KB is given) and the math tools (`--option tool_names=search,lookup` picks
  some; a question-answering suite gives it `tool_names=kb`, the KB tools only, see metric_options);
- codeact: a Python sandbox whose code can call KB `search`, with sympy imported;
- lag: KB `search` (it cannot run without one);
- recbot: the catalog tools (filter, retrieve, rank, explain); it cannot run without a catalog;
- cot: no tools (the bare one-call baseline); reader: KB `search` (one search, one call);
- materials: the materials tools over a MaterialsStore (lookups and exact calculators), for its data assistant
  and, callable from code, its calc assistant; it cannot run without a store.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from agentdistill.agents.codeact import FirstThought, SAGConfig, build_codeact_graph
from agentdistill.agents.common import load_prompt
from agentdistill.agents.cot import build_cot_graph
from agentdistill.agents.exemplars import ExemplarBank, exemplar_file
from agentdistill.agents.lag import build_lag_graph
from agentdistill.agents.materials import build_materials_graph
from agentdistill.agents.react import build_react_graph
from agentdistill.agents.reader import build_reader_graph
from agentdistill.agents.recbot import build_recbot_graph
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.memory.catalog import Catalog
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback
from agentdistill.models.fallback import NodeModels
from agentdistill.tools.base import Tool
from agentdistill.tools.catalog import make_catalog_tools
from agentdistill.tools.math import make_math_tools
from agentdistill.tools.retrieval import make_lookup_tool, make_search_tool
from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig
from agentdistill.trajectory import Recorder

if TYPE_CHECKING:
    from agentdistill.memory.materials import MaterialsStore

AGENTS = ("react", "codeact", "lag", "recbot", "cot", "reader", "materials")
KB_TOOLS = "kb"  # tool_names value: the knowledge-base tools only (what react gets on question-answering suites)
BASELINES = ("cot", "reader")  # one model call each: what an agent must beat on the same items and model
BUILDERS: Mapping[str, Callable[..., CompiledStateGraph]] = {
    "react": build_react_graph,
    "codeact": build_codeact_graph,
    "lag": build_lag_graph,
    "recbot": build_recbot_graph,
    "cot": build_cot_graph,
    "reader": build_reader_graph,
    "materials": build_materials_graph,
}
SANDBOXED = ("codeact", "materials")  # agents whose graphs run code (materials: its calc assistant)


class UnknownAgent(AgentDistillError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown agent {name!r}: choose one of {', '.join(AGENTS)}.")
        self.name = name


class KnowledgeBaseRequired(AgentDistillError):
    def __init__(self, agent: str) -> None:
        super().__init__(
            f"the {agent} agent answers from a knowledge base: pass --kb NAME (`agentdistill kb list` shows them; "
            "`--kb sample` is the shipped one)."
        )


class CatalogRequired(AgentDistillError):
    def __init__(self, agent: str) -> None:
        super().__init__(
            f"the {agent} agent recommends from an item catalog: pass catalog=default_catalog(home, embedder) "
            "(the shipped Netflix titles) or Catalog.open(DIR); on the command line, omit --catalog for the "
            "shipped one or pass --catalog DIR (`agentdistill catalog import FILE --out DIR` makes one)."
        )


class MaterialsRequired(AgentDistillError):
    def __init__(self, agent: str) -> None:
        super().__init__(
            f"the {agent} agent answers from a materials store: pass materials=default_materials_store(home, embedder)"
            " (the shipped Materials Project sample) or MaterialsStore.open(DIR); on the command line, `--agent"
            " materials` opens the shipped one."
        )


class StreamingModel:
    """Passes every single-sample call's text deltas to `on_token`, so any graph streams without knowing it.

    The graph files take no streaming parameter: the chat wraps the model once, before the recorder does.
    Calls with n > 1 (SAG samples) are not streamed: their deltas would interleave.
    """

    def __init__(self, inner: ChatModel, on_token: TokenCallback) -> None:
        self.inner = inner
        self.on_token = on_token
        self.spec = inner.spec

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        sink = on_token or (self.on_token if n == 1 else None)
        return self.inner.generate(
            messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed, on_token=sink
        )

    def __getattr__(self, name: str) -> Any:
        # Optional capabilities of the inner model (e.g. `with_tools` for native tool calls) stay visible;
        # a view bound that way is not streamed, since tool calls do not stream.
        return getattr(self.inner, name)


def default_tools(
    name: str, kb: KnowledgeStore | None, catalog: Catalog | None = None, materials: MaterialsStore | None = None
) -> list[Tool]:
    """The tools `build_agent` gives agent `name` (codeact's are the host tools its sandbox can call)."""
    check_agent(name)
    if name == "materials":
        if materials is None:
            raise MaterialsRequired(name)
        from agentdistill.tools.materials import make_materials_tools

        return make_materials_tools(materials)
    if name == "recbot":
        if catalog is None:
            raise CatalogRequired(name)
        return make_catalog_tools(catalog)
    kb_tools = [] if kb is None else [make_search_tool(kb), make_lookup_tool(kb)]
    if name == "cot":
        return []
    if name == "react":
        return [*kb_tools, *make_math_tools()]
    if name == "codeact":
        return kb_tools[:1]  # sympy is imported inside the sandbox: calculations are plain code there
    if kb is None:
        raise KnowledgeBaseRequired(name)
    return kb_tools[:1]


def codeact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Plain `--option` values for codeact's builder: `ftp=true`, `ftp_model=SPEC`, `ftp_tokens=N`,
    `ftp_prompt=NAME` (a template in the prompts dir, e.g. codeact_first_thought_solve) make a FirstThought;
    `sag_n=N`, `sag_temperature=T` a SAGConfig; `resample=true` samples at 0.7 (or `resample_temperature=T`)
    after an unparsable reply or a repeated cell; `answer_hint=true` answers a code-less reply that states a
    number with how to call final_answer on it; `examples=NAME` appends the worked examples of prompt template
    NAME (e.g. examples_math) to the system prompt; `exemplars=PATH` (a dataset JSONL of solved runs, or a
    `distill` out dir) replays the `exemplars_k=N` (default 2) closest solved runs before each task. Other keys
    pass through unchanged."""
    rest = dict(options)
    ftp = {k: rest.pop(k) for k in ("ftp", "ftp_model", "ftp_tokens", "ftp_prompt") if k in rest}
    sag = {k: rest.pop(k) for k in ("sag_n", "sag_temperature") if k in rest}
    if _truthy("ftp", ftp.get("ftp", bool(ftp))):
        writer = ftp.get("ftp_model")
        if writer is not None and not isinstance(writer, str):
            raise ConfigError("ftp_model", writer, "a model spec such as local:qwen2.5-coder-1.5b")
        from agentdistill.models import make_chat_model

        template = load_prompt(str(ftp["ftp_prompt"]), rest.get("prompts_dir")) if "ftp_prompt" in ftp else None
        rest["first_thought"] = FirstThought(
            model=make_chat_model(writer) if writer else None,
            prompt=template,
            max_tokens=int(ftp.get("ftp_tokens", 160)),
        )
    if "answer_hint" in rest:
        rest["answer_hint"] = _truthy("answer_hint", rest["answer_hint"])
    if "examples" in rest:
        name = rest["examples"]
        if not isinstance(name, str) or not name:
            raise ConfigError("examples", name, "the name of a prompt template, e.g. examples_math")
        rest["examples"] = load_prompt(name, rest.get("prompts_dir"))
    if "exemplars" in rest:
        if not isinstance(rest["exemplars"], str | Path):
            raise ConfigError("exemplars", rest["exemplars"], "the path of a dataset JSONL of solved runs")
        rest["exemplars"] = ExemplarBank.load(rest["exemplars"])
    if "exemplars_k" in rest:
        if not str(rest["exemplars_k"]).isdigit():
            raise ConfigError("exemplars_k", rest["exemplars_k"], "a positive number of solved runs to show")
        rest["exemplars_k"] = int(rest["exemplars_k"])
    if "resample" in rest:
        rest["resample_temperature"] = 0.7 if _truthy("resample", rest.pop("resample")) else 0.0
    if sag and int(sag.get("sag_n", 5)) > 1:
        rest["sag"] = SAGConfig(n=int(sag.get("sag_n", 5)), temperature=float(sag.get("sag_temperature", 0.7)))
    return rest


def _truthy(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, value, "true or false")


def prompt_hash(name: str, options: Mapping[str, Any], prompts_dir: Path | None = None) -> str:
    """What the teacher was shown, as one short hash: the agent's prompt templates and its options.

    Recorded in every run's meta by `bench run` and `distill`, and in a dataset's version, so data collected
    with other prompts is never mixed in silently.
    """
    from importlib import resources

    # the materials agent also shows its assistants' prompts (react's and codeact's)
    prefixes = {"reader": ("reader",), "materials": ("materials_", "react_", "codeact_")}.get(name, (f"{name}_",))
    packaged = resources.files("agentdistill.agents") / "prompts"
    names = sorted(p.name for p in packaged.iterdir() if p.name.startswith(prefixes) and p.name.endswith(".txt"))
    digest = hashlib.sha256(f"{name}\n{json.dumps(dict(options), sort_keys=True, default=str)}\n".encode())
    if isinstance(options.get("examples"), str):  # few-shot examples live outside the agent's prefix
        names.append(f"{options['examples']}.txt")
    if isinstance(options.get("exemplars"), str | Path):  # the runs shown, not only where they were read from
        shown = hashlib.sha256(exemplar_file(options["exemplars"]).read_bytes()).hexdigest()  # = the bank's digest
        digest.update(f"exemplars\n{shown}\n".encode())
    for file in names:
        text = load_prompt(file.removesuffix(".txt"), prompts_dir)
        digest.update(f"{file}\n{text}\n".encode())
    return digest.hexdigest()[:12]


def metric_options(name: str, metric: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` plus what follows from the suite's metric: cot words its prompt for math or short answers;
    react on a question-answering suite gets the knowledge-base tools only (offered `evaluate` and `simplify`
    too, Qwen2.5-Coder-1.5B "compared album counts" with `len([1]) - len([2])` and answered with a polynomial)."""
    if name == "cot" and "task" not in options:
        return {**options, "task": "math" if metric == "math" else "qa"}
    if name == "react" and metric != "math" and "tool_names" not in options:
        return {**options, "tool_names": KB_TOOLS}
    return dict(options)


def pick_tools(tools: Sequence[Tool], names: Any) -> list[Tool]:
    """The tools named in `names` (a comma-separated string or a list), in that order; `--option tool_names=...`.

    `kb` means the knowledge-base tools (search, lookup) when there are any, else all of `tools`."""
    by_name = {tool.name: tool for tool in tools}
    if names == KB_TOOLS:
        kb = [by_name[n] for n in ("search", "lookup") if n in by_name]
        return kb or list(tools)
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names or [])
    unknown = [n for n in wanted if n not in by_name]
    if unknown or not wanted:
        raise ConfigError("tool_names", names, f"comma-separated names among {', '.join(by_name) or 'no tools'}")
    return [by_name[n] for n in wanted]


def check_agent(name: str) -> str:
    if name not in AGENTS:
        raise UnknownAgent(name)
    return name


def as_chat_model(model: Any) -> ChatModel:
    """Ours as is; a LangChain `BaseChatModel` wrapped so the graphs can drive it."""
    from langchain_core.language_models.chat_models import BaseChatModel

    if isinstance(model, BaseChatModel):  # first: it has a generate() of its own, with another signature
        from agentdistill.models.langchain_adapter import LangChainModel

        return LangChainModel(model)
    if isinstance(model, ChatModel):
        return model
    raise ConfigError("model", type(model).__name__, "a ChatModel (make_chat_model(spec)) or a LangChain chat model")


def build_agent(
    name: str,
    model: ChatModel,
    *,
    kb: KnowledgeStore | None = None,
    recorder: Recorder | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    max_steps: int | None = None,
    sandbox: PythonSandbox | None = None,
    prompts_dir: Path | None = None,
    on_token: TokenCallback | None = None,
    tools: Sequence[Tool] | None = None,
    catalog: Catalog | None = None,
    materials: MaterialsStore | None = None,
    **options: Any,
) -> CompiledStateGraph:
    """Build agent `name` around `model` with its default tools (or `tools` instead).

    `options` go to the graph builder unchanged (e.g. codeact's FTP/SAG settings, lag's `k`), so a typo
    fails there with Python's own "unexpected keyword argument". `on_token` streams every single-sample
    model call's text as it is produced. `recorder` None records nothing. `catalog` is recbot's item
    catalog (required for it, ignored by the others); recbot makes a fixed number of calls per turn, so it
    takes no `max_steps`. `materials` is the materials agent's records store (required for it). `model` may also
    be any LangChain chat model (ChatOpenAI, ChatOllama, ...), or a NodeModels (agents/fallback_checks.py
    `node_models`): students for some roles or nodes, the default model for the rest.
    """
    check_agent(name)
    recorder = recorder or Recorder(None, agent=name)
    model = as_chat_model(model)
    if on_token is not None:  # node models (models/fallback.py) each stream, keeping their routing
        stream = functools.partial(StreamingModel, on_token=on_token)
        model = model.map(stream) if isinstance(model, NodeModels) else stream(model)
    chosen = list(tools) if tools is not None else default_tools(name, kb, catalog, materials)
    if "tool_names" in options:
        options = dict(options)
        chosen = pick_tools(chosen, options.pop("tool_names"))
    common: dict[str, Any] = {"checkpointer": checkpointer, "recorder": recorder, "prompts_dir": prompts_dir}
    if max_steps is not None and name != "recbot":
        common["max_steps"] = max_steps
    if name == "recbot":
        if catalog is None:
            raise CatalogRequired(name)
        options = {**options, "catalog": catalog}
    if name in SANDBOXED:
        # sympy is importable in any sandbox; importing it up front saves each first cell ~1 s.
        options = {
            **(codeact_options(options) if name == "codeact" else options),
            "sandbox": sandbox or PythonSandbox(SandboxConfig(), preamble="import sympy"),
        }
    return BUILDERS[name](model, chosen, **common, **options)
