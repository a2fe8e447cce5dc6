"""Shortening correct trajectories before training: drop dead-end steps, and let the teacher compress the reasoning.

Two revisions, each kept only when the trajectory still reaches the answer it reached:
- Dead ends (the Retro-Search idea): a step whose tool call failed (code that raised, a tool error) and that the
  run recovered from is cut, with its observation. A codeact run's cells are re-run without the cut ones in a
  fresh sandbox first, and the cut stands only if they still reach the run's final answer.
- Compression: the teacher rewrites each trained turn's reasoning as one short sentence, put back in front of the
  turn's action text unchanged. The revision is kept only if it parses to exactly the same action (the same code
  cell, the same tool call or final answer), is shorter, and states no number the original reasoning did not (the
  1.5B teacher, compressing "convert 50 minutes to hours, multiply by $12", wrote "her earnings were $10.56").
  Tools here are deterministic (the sandbox, the knowledge base), so the same actions give the same observations
  and the run reaches the same gold answer; nothing is re-executed. Agents with no action parser here (lag, recbot, cot,
  reader, materials) get dead-end cutting only.

A compressed turn loses its token-exact ids (the text is new); an example whose context lost a dead end keeps
its own ids (they are of the trained turn, which did not change).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from agentdistill.agents.codeact_parse import CodeAction, parse_code_action
from agentdistill.agents.react_parse import FinalAnswer, ReactAction, parse_react
from agentdistill.distill.chat_examples import FORMAT_ERRORS, ChatExample, content_hash
from agentdistill.distill.data import load_examples, save_examples
from agentdistill.distill.hf_export import export_hf
from agentdistill.distill.trl_export import export_trl
from agentdistill.memory.trajectories import StoreError, TrajectoryStore
from agentdistill.models.base import ChatModel, user
from agentdistill.paths import atomic_write
from agentdistill.trajectory import Run

ActionKey = Callable[[str], Hashable | None]


def _codeact_key(text: str) -> Hashable | None:
    action = parse_code_action(text)
    return ("code", action.code.strip()) if isinstance(action, CodeAction) else None


def _react_key(text: str) -> Hashable | None:
    action = parse_react(text)
    if isinstance(action, ReactAction):
        return ("act", action.tool, json.dumps(action.args, sort_keys=True, default=str))
    return ("final", action.text.strip()) if isinstance(action, FinalAnswer) else None


ACTION_KEYS: dict[str, ActionKey] = {"codeact": _codeact_key, "react": _react_key}
Rebuild = Callable[[str], str]
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
COMPRESS_PROMPT = (
    "Below is the reasoning an agent wrote before its next action. Rewrite it as one short sentence that keeps "
    "the numbers and facts the action uses. Reply with that sentence only.\n\nReasoning: {thought}"
)


def _codeact_split(text: str) -> tuple[str, Rebuild] | None:
    action = parse_code_action(text)
    if not isinstance(action, CodeAction) or not action.thought:
        return None
    return action.thought, lambda thought: f"Thought: {thought}\n```python\n{action.code}\n```"


def _react_split(text: str) -> tuple[str, Rebuild] | None:
    action = parse_react(text)
    start = min((i for i in (text.find("Action:"), text.find("Final Answer:")) if i >= 0), default=-1)
    if not isinstance(action, ReactAction | FinalAnswer) or not action.thought or start < 0:
        return None
    rest = text[start:]
    return action.thought, lambda thought: f"Thought: {thought}\n{rest}"


# The reasoning of a turn, and how to put a shorter one back in front of the unchanged action.
SPLITS: dict[str, Callable[[str], tuple[str, Rebuild] | None]] = {"codeact": _codeact_split, "react": _react_split}


@dataclass(frozen=True)
class ShortenConfig:
    drop_dead_ends: bool = True
    compress: bool = True
    max_tokens: int = 96  # the teacher's one-sentence rewrite of a turn's reasoning


@dataclass
class ShortenReport:
    """What was cut and rewritten; characters of the trained turns before and after."""

    examples: int = 0
    dead_ends_dropped: int = 0
    turns_asked: int = 0
    turns_revised: int = 0
    rejected_other_action: int = 0
    rejected_not_shorter: int = 0
    rejected_new_numbers: int = 0
    trained_chars_before: int = 0
    trained_chars_after: int = 0
    notes: list[str] = field(default_factory=list)


def _dead_end_steps(run: Run) -> set[int]:
    """Model steps whose following tool call failed (not by format) while the run went on to finish."""
    out, last_model = set(), None
    for step in run.steps:
        if step.kind == "model":
            last_model = step
        elif step.kind == "tool" and step.error is not None and step.error.kind not in FORMAT_ERRORS:
            if last_model is not None:
                out.add(last_model.index)
    final = max((s.index for s in run.steps if s.kind == "model"), default=None)
    return out - {final}


class CodeReplay:
    """Re-runs a codeact run's cells without its dead ends in a fresh sandbox: the cut is kept only if the cells
    left still reach the run's own final answer (a dead-end cell may have set a variable a later one reads)."""

    def __init__(self) -> None:
        from agentdistill.tools.sandbox import PythonSandbox, SandboxConfig

        self.sandbox = PythonSandbox(SandboxConfig(), preamble="import sympy")
        self._verdicts: dict[str, bool] = {}

    def still_reaches(self, run: Run, dead: set[int]) -> bool:
        if run.id not in self._verdicts:
            cells = [a.code for s in run.steps if s.kind == "model" and s.index not in dead
                     and isinstance(a := parse_code_action(s.completion or ""), CodeAction)]  # fmt: skip
            session, final = self.sandbox.session(), None
            try:
                for cell in cells:
                    result = session.run(cell)
                    if result.final_answer_called:
                        final = str(result.final_answer)
            finally:
                session.close()
            self._verdicts[run.id] = final is not None and final == (run.answer or "").strip()
        return self._verdicts[run.id]


def drop_dead_ends(example: ChatExample, run: Run, replay: CodeReplay | None = None) -> tuple[ChatExample, int]:
    """The example without its dead-end turns and their observations; returns (example, turns dropped)."""
    key = ACTION_KEYS.get(run.agent)

    def ident(text: str) -> Hashable | None:  # codeact keeps a cleaned copy of each turn in later prompts
        return (key(text) if key else None) or text.strip()

    dead = _dead_end_steps(run)
    if not dead or (run.agent == "codeact" and replay is not None and not replay.still_reaches(run, dead)):
        return example, 0
    texts = {ident(s.completion or "") for s in run.steps if s.index in dead}
    messages, turns, dropped, skip = [], [], 0, False
    last = max(example.train_turns, default=-1)
    for i, message in enumerate(example.messages):
        if skip:  # the observation of a dropped dead end
            skip = False
            continue
        cut = message["role"] == "assistant" and i < last and ident(message["content"]) in texts
        if cut and i + 1 < len(example.messages) and example.messages[i + 1]["role"] != "assistant":
            dropped, skip = dropped + 1, True
            continue
        if i in example.train_turns:
            turns.append(len(messages))
        messages.append(message)
    if not dropped:
        return example, 0
    return _rebuilt(example, messages, tuple(turns), example.tokens), dropped


def compress_turns(
    example: ChatExample, teacher: ChatModel, agent: str, report: ShortenReport, max_tokens: int
) -> ChatExample:
    """Each trained turn's reasoning rewritten shorter by the teacher in front of the same action text; kept only
    when the turn still parses to the same action and is shorter. Turns with no reasoning are left alone."""
    key, split = ACTION_KEYS[agent], SPLITS[agent]
    messages, changed = list(example.messages), False
    for i in example.train_turns:
        original = messages[i]["content"]
        wanted, parts = key(original), split(original)
        if wanted is None or parts is None:
            continue
        report.turns_asked += 1
        [reply] = teacher.generate([user(COMPRESS_PROMPT.format(thought=parts[0]))], max_tokens=max_tokens,
                                   temperature=0.0)  # fmt: skip
        line = next((ln.strip() for ln in reply.text.splitlines() if ln.strip()), "")
        short = re.sub(r"^(thought|reasoning)\s*:\s*", "", line, flags=re.IGNORECASE)
        revised = parts[1](short)
        if set(NUMBER.findall(short)) - set(NUMBER.findall(parts[0])):
            report.rejected_new_numbers += 1  # a result worked out in the rewrite, which the code may contradict
        elif not line or key(revised) != wanted:
            report.rejected_other_action += 1
        elif len(revised) >= len(original.strip()):
            report.rejected_not_shorter += 1
        else:
            messages[i] = {"role": "assistant", "content": revised}
            report.turns_revised += 1
            changed = True
    return _rebuilt(example, messages, example.train_turns, None) if changed else example


def _rebuilt(example: ChatExample, messages: list, turns: tuple[int, ...], tokens: dict | None) -> ChatExample:
    return replace(example, id=content_hash(messages, turns, example.label), messages=messages, train_turns=turns,
                   tokens=tokens)  # fmt: skip


def trained_chars(examples: Sequence[ChatExample]) -> int:
    return sum(len(e.messages[i]["content"]) for e in examples for i in e.train_turns)


def shorten_examples(
    examples: Sequence[ChatExample],
    runs: dict[str, Run],
    teacher: ChatModel | None,
    config: ShortenConfig,
    *,
    on_example: Callable[[], None] | None = None,
) -> tuple[list[ChatExample], ShortenReport]:
    """Shortened copies of `examples` (their runs, by id, give the failed steps) and what was done."""
    report = ShortenReport(examples=len(examples), trained_chars_before=trained_chars(examples))
    replay = CodeReplay() if config.drop_dead_ends and any(e.agent == "codeact" for e in examples) else None
    out = []
    for example in examples:
        run = runs.get(example.run_id)
        if config.drop_dead_ends and run is not None:
            example, dropped = drop_dead_ends(example, run, replay)
            report.dead_ends_dropped += dropped
        if config.compress and teacher is not None and example.agent in ACTION_KEYS:
            example = compress_turns(example, teacher, example.agent, report, config.max_tokens)
        out.append(example)
        if on_example is not None:
            on_example()
    if config.compress and not any(e.agent in ACTION_KEYS for e in examples):
        report.notes.append("no compression: only codeact and react turns have an action parser to check it")
    report.trained_chars_after = trained_chars(out)
    return out, report


def shorten_dataset(
    data_dir: Path, out_dir: Path, store: TrajectoryStore, teacher: ChatModel | None, config: ShortenConfig,
    *, on_example: Callable[[], None] | None = None,
) -> ShortenReport:  # fmt: skip
    """A new dataset dir: `data_dir`'s train split shortened (val and negatives copied unchanged, so val losses of
    shortened and plain training compare on the same conversations); info.json says what was done."""
    source = json.loads((data_dir / "info.json").read_text(encoding="utf-8"))
    train = load_examples(data_dir / "train.jsonl")
    val = load_examples(data_dir / "val.jsonl") if (data_dir / "val.jsonl").is_file() else []
    runs = {}
    for run_id in {e.run_id for e in train}:
        with contextlib.suppress(StoreError):
            runs[run_id] = store.get(run_id)
    shortened, report = shorten_examples(train, runs, teacher, config, on_example=on_example)
    if len(runs) < len({e.run_id for e in train}):
        report.notes.append(f"{len({e.run_id for e in train}) - len(runs)} runs not in the store: no dead-end cuts")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_examples(out_dir / "train.jsonl", shortened)
    save_examples(out_dir / "val.jsonl", val)
    if (data_dir / "negatives.jsonl").is_file():
        shutil.copyfile(data_dir / "negatives.jsonl", out_dir / "negatives.jsonl")
    export_hf(out_dir, shortened, val)
    export_trl(out_dir, shortened, val)
    digest = hashlib.sha256()
    for name in ("train.jsonl", "val.jsonl", "negatives.jsonl"):
        if (out_dir / name).is_file():
            digest.update(name.encode() + b"\n" + (out_dir / name).read_bytes())
    version = {**(source.get("version") or {}), "data_sha256": digest.hexdigest(),
               "shortened_from": (source.get("version") or {}).get("data_sha256"),
               "shorten": {**asdict(config), "teacher": getattr(teacher, "spec", None)}}  # fmt: skip
    info = {**source, "out_dir": str(out_dir), "train": len(shortened), "version": version, "shortened": asdict(report)}
    with atomic_write(out_dir / "info.json") as out:
        json.dump(info, out, indent=2)
    return report
