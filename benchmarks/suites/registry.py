"""The built-in suites, user JSONL suites, and reading a suite's items from the data dir or the package.

The table is fixed: nothing registers itself at import time. `sample` and `gsm8k-sample` read files
shipped in agentdistill/data, so `bench run` works on a fresh install; the others read the data dir
(`--data-dir` or `data_dir` in config), laid out like shared/data.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from agentdistill.benchmarks.datasets import load_dataset
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.metrics import METRICS
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.errors import AgentDistillError

PACKAGE = "package:"  # Suite.path prefix for files shipped in agentdistill/data
_CONFIG_HINT = (
    '`--data-dir DIR`, or `data_dir = "DIR"` in <home>/config.toml (home: $AGENTDISTILL_HOME or ~/.agentdistill)'
)
_NO_DATA_SUITES = "`sample` and `gsm8k-sample` need no data dir"


class UnknownSuite(AgentDistillError):
    def __init__(self, name: str, known: list[str]) -> None:
        guess = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {guess[0]!r}?" if guess else ""
        super().__init__(
            f"unknown suite {name!r}: built-in suites are {', '.join(known)}.{hint} "
            "For your own JSONL file pass its path instead (see `agentdistill bench list`)."
        )
        self.name = name


class DataDirRequired(AgentDistillError):
    def __init__(self, suite: Suite) -> None:
        super().__init__(
            f"suite {suite.name!r} reads {suite.path} from the benchmark data dir, which is not set: pass "
            f"{_CONFIG_HINT}; DIR is laid out like shared/data (hotpotqa/, math/, ...). {_NO_DATA_SUITES}."
        )
        self.suite = suite


class DataFileNotFound(AgentDistillError):
    def __init__(self, suite: Suite, path: Path, data_dir: Path | None) -> None:
        where = f" (data dir {data_dir}: set it with {_CONFIG_HINT})" if data_dir is not None else ""
        extra = ""
        if suite.loader == "bamboogle":
            extra = " Bamboogle is not shipped: put its JSONL (question, answer) there, or pass the file's path."
        super().__init__(f"suite {suite.name!r} needs {path}, which does not exist{where}.{extra}")
        self.path = path


class BadSuite(AgentDistillError):
    """A user suite asks for a metric or agent we do not have."""


def _suite(name: str, description: str, loader: str, path: str, agent: str, metric: str, **kw: object) -> Suite:
    return Suite(name=name, description=description, loader=loader, path=path, agent=agent, metric=metric, **kw)


_HOTPOT_LICENSE = "CC BY-SA 4.0 (HotpotQA, Yang et al. 2018)"
_GSM8K_LICENSE = "MIT (GSM8K, Cobbe et al. 2021)"
SUITES: Mapping[str, Suite] = MappingProxyType(
    {
        s.name: s
        for s in (
            _suite(
                "sample", "48 HotpotQA questions over the shipped sample KB (no data dir needed)",
                "jsonl", f"{PACKAGE}sample_questions.jsonl", "react", "qa", kb="named", kb_name="sample",
                license=_HOTPOT_LICENSE,
            ),
            _suite(
                "gsm8k-sample", "60 GSM8K test problems shipped in the package (no data dir needed)",
                "gsm8k", f"{PACKAGE}gsm8k_sample.jsonl", "codeact", "math", license=_GSM8K_LICENSE,
            ),
            _suite(
                "hotpotqa", "HotpotQA dev, distractor setting: 388 multi-hop questions, KB = their pooled paragraphs",
                "hotpotqa", "hotpotqa/dev_shared.jsonl", "react", "qa", kb="contexts", license=_HOTPOT_LICENSE,
            ),
            _suite(
                "2wiki", "2WikiMultihopQA dev: 120 multi-hop questions, KB = their pooled paragraphs",
                "2wiki", "2wikimultihopqa/dev_shared.jsonl", "react", "qa", kb="contexts",
                license="Apache-2.0 (2WikiMultihopQA, Ho et al. 2020)",
            ),
            _suite(
                "musique", "MuSiQue dev (answerable): 120 2-hop questions, KB = their supporting paragraphs",
                "musique", "musique/dev_shared.jsonl", "lag", "qa", kb="contexts",
                license="CC BY 4.0 (MuSiQue, Trivedi et al. 2022)",
            ),
            _suite(
                "bamboogle", "Bamboogle: 125 questions search engines miss; no corpus: pass --kb NAME; not shipped",
                "bamboogle", "bamboogle/test.jsonl", "react", "qa", kb="named",
                license="see the Bamboogle release (Press et al. 2023); supplied by the user",
            ),
            _suite(
                "gsm8k", "GSM8K test: 800 grade-school math word problems",
                "gsm8k", "math/gsm8k_test_shared.jsonl", "codeact", "math", license=_GSM8K_LICENSE,
            ),
            _suite(
                "gsm8k-train", "GSM8K train: 7473 problems, for collecting distillation trajectories",
                "gsm8k", "math/gsm8k_train.jsonl", "codeact", "math", license=_GSM8K_LICENSE,
            ),
            _suite(
                "svamp", "SVAMP: 600 one-step arithmetic word problems with distracting variations",
                "svamp", "math/svamp_shared.jsonl", "codeact", "math", license="MIT (SVAMP, Patel et al. 2021)",
            ),
            _suite(
                "math500", "MATH-500: 300 competition problems with LaTeX answers",
                "math500", "math/math500_shared.jsonl", "codeact", "math",
                license="MIT (MATH, Hendrycks et al. 2021; MATH-500 from openai/prm800k)",
            ),
        )
    }
)  # fmt: skip


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise UnknownSuite(name, list(SUITES))
    return SUITES[name]


def user_suite(
    path: str | Path,
    *,
    metric: str = "qa",
    kb_name: str | None = None,
    fields: Mapping[str, str] | None = None,
    agent: str = "react",
    loader: str = "jsonl",
) -> Suite:
    """A suite over the user's own JSONL (`question`, `answer`/`answers`; `fields` renames them).

    With `kb_name` the agent searches that knowledge store; without one it runs with no KB. `loader` lets a
    file in one of the built-in shapes (e.g. a Bamboogle copy) be run from wherever it lives.
    """
    if metric not in METRICS:
        raise BadSuite(f"unknown metric {metric!r} for {path}: use one of {', '.join(METRICS)}")
    resolved = Path(path).expanduser().resolve()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", resolved.stem).strip("-._") or "user"
    return Suite(
        name=name,
        description=f"user data {resolved}",
        loader=loader,
        path=str(resolved),
        agent=agent,
        metric=metric,
        kb="named" if kb_name else "none",
        kb_name=kb_name,
        fields=tuple(sorted((fields or {}).items())),
    )


def with_path(suite: Suite, path: str | Path) -> Suite:
    """A built-in suite (loader, agent, metric, KB mode) reading another file, e.g. bamboogle from a user path."""
    return dataclasses.replace(suite, path=str(Path(path).expanduser().resolve()))


def suite_path(suite: Suite, data_dir: Path | None) -> Path:
    """Where the suite's file is: in the package, absolute, or under the data dir (which must then be set)."""
    if suite.path.startswith(PACKAGE):
        return Path(str(resources.files("agentdistill") / "data" / suite.path.removeprefix(PACKAGE)))
    path = Path(suite.path)
    if path.is_absolute():
        return path
    if data_dir is None:
        raise DataDirRequired(suite)
    return Path(data_dir).expanduser() / path


def load_items(suite: Suite, data_dir: Path | None, *, limit: int | None = None) -> list[Item]:
    """The suite's items, every line validated first (InputDataError names file:line:field)."""
    path = suite_path(suite, data_dir)
    if not path.is_file():
        in_data_dir = not suite.path.startswith(PACKAGE) and not Path(suite.path).is_absolute()
        raise DataFileNotFound(suite, path, data_dir if in_data_dir else None)
    return load_dataset(suite.loader, path, limit=limit, fields=dict(suite.fields) or None)
