"""The built-in suites, user JSONL suites, and reading a suite's items from the data dir or the package.

The table is fixed: nothing registers itself at import time. `sample` and `gsm8k-sample` read files
shipped in agentdistill/data, so `bench run` works on a fresh install; the others read the data dir
(`--data-dir` or `data_dir` in config), laid out like shared/data. The recommendation suites make their
items from the item catalog (`rec-netflix`: simulated sessions over the packaged one; `rec-requests`: the
InteRecAgent requests from the data dir, filled in from it), so `load_items` needs the catalog for them.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from agentdistill.benchmarks.datasets import load_dataset
from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.metrics import METRICS
from agentdistill.benchmarks.suites.suite import Suite
from agentdistill.errors import AgentDistillError

if TYPE_CHECKING:
    from agentdistill.memory.catalog import Catalog

PACKAGE = "package:"  # Suite.path prefix for files shipped in agentdistill/data
REC_LOADERS = ("rec-sessions", "rec-requests")  # items made from the item catalog, not by datasets.LOADERS
_CONFIG_HINT = (
    '`--data-dir DIR`, or `data_dir = "DIR"` in <home>/config.toml (home: $AGENTDISTILL_HOME or ~/.agentdistill)'
)
_NO_DATA_SUITES = "`sample`, `gsm8k-sample`, `materials-sample` and `rec-netflix` need no data dir"


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


class CatalogRequired(AgentDistillError):
    def __init__(self, suite: Suite) -> None:
        super().__init__(
            f"suite {suite.name!r} makes its items from the item catalog, and none was given: open one with "
            "memory.catalog.default_catalog(home, embedder) (what `bench run` does) and pass it as catalog=."
        )


def _suite(name: str, description: str, loader: str, path: str, agent: str, metric: str, **kw: object) -> Suite:
    return Suite(name=name, description=description, loader=loader, path=path, agent=agent, metric=metric, **kw)


_HOTPOT_LICENSE = "CC BY-SA 4.0 (HotpotQA, Yang et al. 2018)"
_GSM8K_LICENSE = "MIT (GSM8K, Cobbe et al. 2021)"
_MP_LICENSE = "CC BY 4.0 (Materials Project data, via the LLaMP repo, BSD-3-Clause)"
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
            _suite(
                "materials-sample", "questions with exact answers from the ~80 Materials Project records shipped in the"
                " package (no data dir needed)", "materials", f"{PACKAGE}materials_sample.jsonl", "materials",
                "materials", kb="records", license=_MP_LICENSE,
            ),
            _suite(
                "materials", "questions with exact answers (ordering, magnetization, energies, band gap, bulk modulus,"
                " molar mass) from 225 Materials Project records", "materials", "materials/mp_records_shared.jsonl",
                "materials", "materials", kb="records", license=_MP_LICENSE,
            ),
            _suite(
                "rec-netflix", "40 simulated users hunting a hidden title in the packaged Netflix catalog",
                "rec-sessions", f"{PACKAGE}netflix_catalog.jsonl", "recbot", "rec", episode="simulated",
                license="CC0 (Netflix Movies and TV Shows, Shivam Bansal, Kaggle)",
            ),
            _suite(
                "rec-requests", "340 real InteRecAgent requests as single-turn movie requests (qualitative)",
                "rec-requests", "recommendation/interecagent_requests_shared.jsonl", "recbot", "rec",
                episode="requests", license="MIT (InteRecAgent / RecAI, Huang et al. 2023)",
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


def load_items(
    suite: Suite, data_dir: Path | None, *, limit: int | None = None, catalog: Catalog | None = None
) -> list[Item]:
    """The suite's items, every line validated first (InputDataError names file:line:field).

    Recommendation suites (REC_LOADERS) need `catalog`: their items are sessions sampled from it, or
    requests filled in from it.
    """
    path = suite_path(suite, data_dir)
    if not path.is_file():
        in_data_dir = not suite.path.startswith(PACKAGE) and not Path(suite.path).is_absolute()
        raise DataFileNotFound(suite, path, data_dir if in_data_dir else None)
    if suite.loader in REC_LOADERS:
        if catalog is None:
            raise CatalogRequired(suite)
        # imported here: only catalog suites need the catalog code (and its SQLite/FAISS imports)
        from agentdistill.benchmarks.suites.rec_sessions import load_requests, session_items

        if suite.loader == "rec-requests":
            return load_requests(path, catalog, limit=limit)
        return session_items(catalog)[:limit]
    if suite.loader == "materials":  # questions generated from the records (imported here: pymatgen is slow to load)
        from agentdistill.benchmarks.suites.materials_questions import materials_items

        return materials_items(path, limit=limit)
    return load_dataset(suite.loader, path, limit=limit, fields=dict(suite.fields) or None)
