"""Training data from recorded runs: select good runs, turn them into chat examples, split, save, version.

Selection follows Agent Distillation: keep correct runs without parse errors or step overflow, but keep
runs that hit a tool or execution error and recovered from it (that recovery is worth learning). The
examples (chat_examples.py) are written as train/val(/negatives).jsonl with info.json saying what was kept,
what each filter removed and which teacher and prompt version the data came from; `encode_examples` turns
a saved split into the student's tokens (encoding.py) for training.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agentdistill.distill.chat_examples import (
    FORMAT_ERRORS,
    ChatExample,
    dedupe,
    examples_from_runs,
    normalize_question,
    split_by_question,
    trainable,
)
from agentdistill.distill.curate import CurateConfig, curate, difficulty_counts, pass_rates
from agentdistill.distill.encoding import IGNORE, EncodedExample, encode_example, end_token_ids, student_tokenizer_id
from agentdistill.distill.hf_export import export_hf
from agentdistill.distill.trl_export import export_trl
from agentdistill.errors import AgentDistillError, ConfigError, InputDataError
from agentdistill.jsonl import text_lines
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.paths import atomic_write
from agentdistill.trajectory import Run

_STATUSES = ("running", "ok", "max_steps", "error")
# Model roles a student takes over, for agents with more than the one "policy" role: recbot's every call is
# a student's job (its graph is the same for teacher and student; only the model behind the roles changes).
# codeact's first thought (FTP) is written by the policy model itself, so a student must learn it too.
AGENT_ROLES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "recbot": ("parser", "planner", "responder"),
        "codeact": ("policy", "first_thought"),
        # every level of the hierarchy, each on its own calls (the data assistant's answer-on-repeat call too)
        "materials": ("supervisor", "data.policy", "data.answer", "calc.policy"),
    }
)


class EmptySelection(AgentDistillError):
    """No run passed the filters; the message says how many each filter removed."""

    def __init__(self, config: SelectConfig, considered: int, dropped: Mapping[str, int]) -> None:
        scope = f"agent {config.agent}" + (f" in suite {config.suite}" if config.suite else "")
        if not considered:
            message = (
                f"0 runs left: the store has no runs of {scope}. Record some first with "
                "`agentdistill distill collect` or `agentdistill bench run`."
            )
        else:
            parts = [f"{n} by {reason_label(reason, config)}" for reason, n in dropped.items() if n]
            message = (
                f"0 runs left: {considered} runs of {scope}; removed {', '.join(parts)}. "
                "Loosen that filter (e.g. --min-score, --model) or collect more runs."
            )
        super().__init__(message)
        self.considered, self.dropped = considered, dict(dropped)


class MixedDataset(AgentDistillError):
    """The selected runs come from several teachers or prompts; training on them together is never silent."""

    def __init__(self, what: str, values: Sequence[str]) -> None:
        counts = ", ".join(values)
        super().__init__(
            f"the selected runs mix {len(values)} {what}: {counts}. Pick one with --model SPEC (and runs collected"
            " with one prompt, e.g. one --suite), or pass --allow-mixed to train on all of them knowingly."
        )
        self.what, self.values = what, list(values)


@dataclass(frozen=True, kw_only=True)
class SelectConfig:
    """Which recorded runs become positive training data."""

    agent: str  # agent name as recorded (react, codeact, lag, ...)
    model: str | None = None  # spec or fnmatch glob of the model in `roles`; None = any model
    suite: str | None = None  # benchmark suite the runs were scored on; None = any
    min_score: float | None = 1.0  # keep runs scored at least this; None = do not look at scores
    statuses: tuple[str, ...] = ("ok",)  # run statuses kept
    drop_parse_errors: bool = True  # drop a run if any model step failed to parse (FORMAT_ERRORS)
    drop_max_steps: bool = True  # drop runs that ran out of steps, even if a guess scored
    keep_recovered_errors: bool = True  # keep runs with tool/execution errors the run went on to recover from
    roles: tuple[str, ...] = ()  # model roles whose calls become examples; () = the agent's (agent_roles)
    limit: int | None = None  # keep at most this many runs (oldest first)
    allow_mixed: bool = False  # allow runs of several teachers or prompt versions in one dataset
    prompt_hash: str | None = None  # keep only runs recorded with this prompt hash (factory.prompt_hash)
    # Keep only runs whose stored metric is at least this, e.g. {"turn_parse_accuracy": 1.0}: recbot parses
    # that match what the simulated user had said (ground truth a teacher can miss and a student can learn).
    min_metrics: Mapping[str, float] = field(default_factory=dict)
    # Calls whose backend recorded the sampled ids become examples carrying them (trained as those ids when the
    # student shares the teacher's tokenizer); False re-tokenises every completion's text, as before.
    token_exact: bool = True
    student_tokenizer: str | None = None  # the student's tokenizer id: ids recorded with another tokenizer are not kept
    # Difficulty filter and the choice among a question's correct runs (distill/curate.py); off by default.
    curate: CurateConfig = field(default_factory=CurateConfig)

    def __post_init__(self) -> None:
        if not self.agent:
            raise ConfigError("agent", self.agent, "the recorded agent name, e.g. react or codeact")
        if not self.statuses or any(s not in _STATUSES for s in self.statuses):
            raise ConfigError("statuses", self.statuses, f"a non-empty subset of {', '.join(_STATUSES)}")
        if not self.roles:
            object.__setattr__(self, "roles", agent_roles(self.agent))
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit", self.limit, "a positive number of runs, or None for all")


def agent_roles(agent: str) -> tuple[str, ...]:
    """The model roles of `agent` whose calls a distilled student makes (AGENT_ROLES, else "policy")."""
    return AGENT_ROLES.get(agent, ("policy",))


@dataclass(frozen=True)
class Selection:
    """The runs kept, and how many each filter removed (reason -> count), out of `considered`."""

    runs: list[Run]
    dropped: dict[str, int]
    considered: int
    difficulty: dict[str, int] = field(default_factory=dict)  # selected questions per pass-rate bucket


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What `build_dataset` wrote and why the rest was left out; saved as info.json."""

    out_dir: Path
    considered: int  # runs of the agent (and suite) in the store
    runs: int  # runs selected
    dropped: dict[str, int]  # runs removed, by filter
    examples: int  # positive examples after merging and dedupe
    duplicates: int  # positive examples removed as duplicates
    train: int
    val: int
    negative_runs: int | None = None  # failed runs used as negatives (None: negatives not asked for)
    negatives: int | None = None  # negative examples written
    negatives_in_val: int = 0  # negative examples dropped because their question is in val (no leakage)
    token_exact: int = 0  # positive examples that carry the teacher's sampled ids
    difficulty: dict[str, int] = field(default_factory=dict)  # selected questions per pass-rate bucket (curation)
    version: dict[str, Any] = field(default_factory=dict)  # teachers, prompt hashes, data sha256, filters

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir)}


# -- selection ---------------------------------------------------------------------------------------------------
def select_runs(store: TrajectoryStore, config: SelectConfig) -> Selection:
    """The runs `config` keeps; raises EmptySelection (naming what each filter removed) when none are left."""
    candidates = store.runs(agent=config.agent, suite=config.suite, with_steps=False)
    dropped: dict[str, int] = {}
    kept: list[Run] = []
    for run in candidates:
        reason = _run_reason(run, config)
        if reason is None:
            run = store.get(run.id)  # steps only for the runs that passed the cheap run-level filters
            reason = _step_reason(run, config)
        if reason is None and config.limit is not None and len(kept) >= config.limit:
            reason = "limit"
        if reason is None:
            kept.append(run)
        else:
            dropped[reason] = dropped.get(reason, 0) + 1
    difficulty: dict[str, int] = {}
    if config.curate.active and kept:
        same_teacher = [r for r in candidates if _model_matches(r, config) and _run_reason(r, config) != "prompt"]
        rates = pass_rates(same_teacher, 1.0 if config.min_score is None else config.min_score)
        kept, removed = curate(kept, rates, config.curate, config.roles)
        for reason, n in removed.items():
            dropped[reason] = dropped.get(reason, 0) + n
        difficulty = difficulty_counts(kept, rates)
    dropped = dict(sorted(dropped.items(), key=lambda kv: -kv[1]))
    if not kept:
        raise EmptySelection(config, len(candidates), dropped)
    return Selection(kept, dropped, len(candidates), difficulty)


def select_negatives(store: TrajectoryStore, config: SelectConfig) -> list[Run]:
    """Failed runs of the same agent/model/suite (wrong answer, max_steps, error): REDI's negatives."""
    out = []
    for run in store.runs(agent=config.agent, suite=config.suite, with_steps=False):
        wrong = config.min_score is not None and run.score is not None and run.score < config.min_score
        failed = run.status in ("max_steps", "error") or (run.status == "ok" and wrong)
        if failed and _model_matches(run, config):
            out.append(store.get(run.id))
    return out


def _model_matches(run: Run, config: SelectConfig) -> bool:
    if config.model is None:
        return True
    return any(fnmatch.fnmatchcase(run.models.get(role, ""), config.model) for role in config.roles)


def _run_reason(run: Run, config: SelectConfig) -> str | None:
    if not _model_matches(run, config):
        return "model"
    if config.prompt_hash is not None and run.meta.get("prompt_hash") != config.prompt_hash:
        return "prompt"
    if run.status == "running":
        return "unfinished"
    if run.status == "max_steps" and config.drop_max_steps:
        return "max_steps"
    if run.status not in config.statuses:
        return "status"
    if config.min_score is not None:
        if run.score is None:
            return "unscored"
        if run.score < config.min_score:
            return "min_score"
    for name, least in config.min_metrics.items():
        value = run.metrics.get(name)
        if not isinstance(value, int | float) or value < least:
            return "min_metrics"
    return None


def _step_reason(run: Run, config: SelectConfig) -> str | None:
    kinds = {s.error.kind for s in run.steps if s.error is not None}
    if config.drop_max_steps and ("max_steps" in kinds or (run.error and run.error.kind == "max_steps")):
        return "max_steps"
    if config.drop_parse_errors and any(
        s.kind == "model" and s.error and s.error.kind in FORMAT_ERRORS for s in run.steps
    ):
        return "parse_error"
    if not config.keep_recovered_errors and kinds - FORMAT_ERRORS - {"max_steps"}:
        return "recovered_error"
    if not any(trainable(s, config.roles) for s in run.steps):
        return "no_model_steps"
    return None


def reason_label(reason: str, config: SelectConfig) -> str:
    """A reason key of `Selection.dropped` in words, with the filter's value (for errors and tables)."""
    labels = {
        "model": f"model={config.model}", "unfinished": "still running", "max_steps": "max_steps",
        "status": f"status not in {'/'.join(config.statuses)}", "min_score": f"min_score={config.min_score:g}"
        if config.min_score is not None else "min_score", "unscored": "no score (score them with a benchmark)",
        "parse_error": "parse errors", "recovered_error": "in-run tool/execution errors",
        "no_model_steps": f"no {'/'.join(config.roles)} model calls", "limit": f"limit={config.limit}",
        "prompt": f"prompt_hash={config.prompt_hash} (collected with other prompts)",
        "min_metrics": ", ".join(f"{k} >= {v:g}" for k, v in config.min_metrics.items()),
        "difficulty": f"difficulty not in {','.join(config.curate.difficulty)} (teacher pass rate)",
        "choice": f"not chosen ({config.curate.choose}, {config.curate.per_question or 1} per question)",
    }  # fmt: skip
    return labels.get(reason, reason)


# -- tokens ------------------------------------------------------------------------------------------------------
def encode_examples(tokenizer: Any, examples: Sequence[ChatExample], max_len: int) -> tuple[list[EncodedExample], int]:
    """Encode all; examples longer than `max_len` tokens are dropped (a cut trajectory teaches a cut answer).

    Returns (encoded, number dropped for length).
    """
    end_ids = end_token_ids(tokenizer)
    student_id = student_tokenizer_id(tokenizer) if any(e.tokens for e in examples) else None
    out, cut = [], 0
    for example in examples:
        encoded = encode_example(tokenizer, example, end_ids, student_id)
        if len(encoded.input_ids) > max_len:
            cut += 1
        elif any(t != IGNORE for t in encoded.labels):
            out.append(encoded)
    return out, cut


# -- files -------------------------------------------------------------------------------------------------------
def save_examples(path: str | Path, examples: Sequence[ChatExample]) -> None:
    """One example per line, written atomically."""
    with atomic_write(path) as out:
        for example in examples:
            out.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")


def load_examples(path: str | Path) -> list[ChatExample]:
    """Read a JSONL file of examples; a bad line raises InputDataError naming file:line."""
    out = []
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            out.append(ChatExample.from_dict(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputDataError(path, number, f"not valid JSON ({exc.msg})") from exc
        except (TypeError, KeyError, ValueError, AttributeError, RecursionError) as exc:
            raise InputDataError(path, number, f"not a chat example: {exc}") from exc
    return out


def build_dataset(
    store: TrajectoryStore, select: SelectConfig, out_dir: str | Path, *, val_fraction: float = 0.1, seed: int = 0,
    negatives: bool = False,
) -> DatasetInfo:  # fmt: skip
    """Select, convert, dedupe and split; write train/val(/negatives).jsonl and info.json under `out_dir`.

    Negatives are the failed runs of the same agent/model/suite; those whose question is in val are left out.
    """
    out_dir = Path(out_dir)
    selection = select_runs(store, select)
    check_unmixed(selection.runs, select)
    examples, duplicates = dedupe(
        examples_from_runs(
            selection.runs, roles=select.roles, token_exact=select.token_exact, tokenizer=select.student_tokenizer
        )
    )
    train, val = split_by_question(examples, val_fraction, seed)
    save_examples(out_dir / "train.jsonl", train)
    save_examples(out_dir / "val.jsonl", val)
    negative_runs = neg_count = None
    in_val = 0
    if negatives:
        runs = select_negatives(store, select)
        found, _ = dedupe(
            examples_from_runs(
                runs,
                label="negative",
                roles=select.roles,
                token_exact=select.token_exact,
                tokenizer=select.student_tokenizer,
            )
        )
        val_questions = {normalize_question(e.question) for e in val}
        kept = [e for e in found if normalize_question(e.question) not in val_questions]
        in_val, negative_runs, neg_count = len(found) - len(kept), len(runs), len(kept)
        save_examples(out_dir / "negatives.jsonl", kept)
    elif (out_dir / "info.json").is_file():
        (out_dir / "negatives.jsonl").unlink(missing_ok=True)  # a stale file from an earlier build would mislead
    version = dataset_version(selection.runs, select, out_dir)
    info = DatasetInfo(
        out_dir=out_dir, considered=selection.considered, runs=len(selection.runs), dropped=selection.dropped,
        examples=len(examples), duplicates=duplicates, train=len(train), val=len(val), negative_runs=negative_runs,
        negatives=neg_count, negatives_in_val=in_val, version=version,
        token_exact=sum(1 for e in examples if e.tokens is not None), difficulty=selection.difficulty,
    )  # fmt: skip
    export_hf(out_dir, train, val)
    export_trl(out_dir, train, val)
    with atomic_write(out_dir / "info.json") as out:
        json.dump({**info.to_dict(), "select": asdict(select), "val_fraction": val_fraction, "seed": seed}, out,
                  indent=2)  # fmt: skip
    return info


# -- versioning ---------------------------------------------------------------------------------------------------
def teachers_of(runs: Sequence[Run], roles: Sequence[str]) -> list[str]:
    """The model specs behind the trained roles of `runs`, with their run counts, most used first."""
    counts: dict[str, int] = {}
    for run in runs:
        for spec in {run.models[r] for r in roles if r in run.models}:
            counts[spec] = counts.get(spec, 0) + 1
    return [spec for spec, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def prompt_hashes_of(runs: Sequence[Run]) -> list[str]:
    """The prompt hashes `bench run`/`distill` recorded in the runs' meta ("unrecorded" for older runs)."""
    return sorted({str(run.meta.get("prompt_hash") or "unrecorded") for run in runs})


def check_unmixed(runs: Sequence[Run], select: SelectConfig) -> None:
    """MixedDataset unless the runs share one teacher and one prompt version (or mixing is allowed)."""
    if select.allow_mixed:
        return
    teachers = teachers_of(runs, select.roles)
    if len(teachers) > 1:
        raise MixedDataset("teachers", teachers)
    prompts = [h for h in prompt_hashes_of(runs) if h != "unrecorded"]
    if len(prompts) > 1:
        raise MixedDataset("prompt versions", [f"prompt_hash {h}" for h in prompts])


def dataset_version(runs: Sequence[Run], select: SelectConfig, out_dir: Path) -> dict[str, Any]:
    """What identifies a dataset: its files' sha256, the teacher(s), the prompt hash(es) and the filters."""
    digest = hashlib.sha256()
    for name in ("train.jsonl", "val.jsonl", "negatives.jsonl"):
        path = out_dir / name
        if path.is_file():
            digest.update(name.encode() + b"\n" + path.read_bytes())
    return {
        "data_sha256": digest.hexdigest(),
        "teachers": teachers_of(runs, select.roles),
        "prompt_hashes": prompt_hashes_of(runs),
        "filters": json.loads(json.dumps(asdict(select))),  # tuples as lists, as info.json has them
        "run_ids_sha256": hashlib.sha256("\n".join(sorted(r.id for r in runs)).encode()).hexdigest(),
    }
