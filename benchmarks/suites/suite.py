"""`Suite`: a benchmark = data + how its knowledge store is built + default agent + metric.

Suites are plain frozen values in a fixed table (suites/registry.py); `bench run --suite NAME` looks one
up, `--agent`/`--model` choose what runs on it. User JSONL files become a Suite the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

KbMode = Literal["contexts", "named", "none", "records"]


@dataclass(frozen=True)
class Suite:
    """Where the items come from and how to score them.

    `path` is relative to the data dir (`--data-dir` / `data_dir` in config: the layout of shared/data),
    `package:<file>` for data shipped inside agentdistill/data, or an absolute path for user files.
    """

    name: str
    description: str
    loader: str  # key of datasets.LOADERS (hotpotqa, ..., jsonl), or of registry.REC_LOADERS for catalog suites
    path: str
    agent: str  # default agent (react | codeact | lag | recbot); --agent overrides
    metric: str  # key of metrics.METRICS: qa | math; "rec" for episode suites (scored by rec_episode)
    # contexts: the items' passages pooled into one KB (cached by content hash); records: the suite's file is a
    # records store the agent searches (materials), built from it and cached the same way
    kb: KbMode = "none"
    kb_name: str | None = None  # for kb="named": the default KB name; --kb overrides
    max_steps: int | None = None  # agent default when None
    license: str = ""
    fields: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # user JSONL: (our field, their field)
    # Items that are conversations, scored by rec_episode instead of `metric`: "simulated" sessions or single-turn
    # "requests" over the item catalog. None: one question per item, scored by `metric`.
    episode: str | None = None
