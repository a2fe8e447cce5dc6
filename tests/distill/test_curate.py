"""Curation: pass rates over attempts, difficulty buckets, and the choice among a question's correct runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.distill.curate import CurateConfig, NoLogProbs, PassRate, curate, pass_rates
from agentdistill.distill.data import SelectConfig, build_dataset, select_runs
from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import Completion, user
from agentdistill.models.sampling import SampledModel
from agentdistill.trajectory import Run, Step, StepError


def _run(rid: str, item: str, score: float, *, tokens: int = 10, errors: int = 0, logprob: float | None = None,
         created: float = 0.0) -> Run:  # fmt: skip
    record = {"tokenizer": "tok-1", "prompt": None, "completions": [[1] * tokens], "finish": ["stop"],
              "logprobs": [logprob]}  # fmt: skip
    steps = [Step(run_id=rid, index=0, kind="model", node="act", messages_in=[user(f"question {item}")],
                  completion=f"answer of {rid}", completion_tokens=tokens,
                  tokens=None if logprob is None else record)]  # fmt: skip
    failed = StepError("execution_error", "x")
    steps += [Step(run_id=rid, index=1 + i, kind="tool", node="act", tool="python", error=failed)
              for i in range(errors)]  # fmt: skip
    return Run(id=rid, agent="codeact", question=f"question {item}", models={"policy": "local:t"}, status="ok",
               score=score, suite="gsm8k:train", item_id=item, steps=steps, created_at=created)  # fmt: skip


def test_pass_rates_grade_questions_into_buckets() -> None:
    runs = [_run(f"a{i}", "a", 1.0) for i in range(4)] + [_run("b0", "b", 1.0), _run("b1", "b", 0.0)]
    runs += [_run("c0", "c", 1.0)] + [_run(f"c{i}", "c", 0.0) for i in range(1, 5)] + [_run("d0", "d", 0.0)]
    rates = pass_rates(runs, 1.0)
    assert rates["gsm8k:train|a"] == PassRate(4, 4)
    assert {k.split("|")[1]: r.difficulty for k, r in rates.items()} == {
        "a": "easy", "b": "medium", "c": "hard", "d": "unsolved"}  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "chosen"), [("shortest", "short"), ("fewest_errors", "clean"), ("logprob", "likely"), ("all", None)]
)
def test_each_rule_picks_its_run(rule: str, chosen: str | None) -> None:
    runs = [_run("short", "a", 1.0, tokens=5, errors=2, logprob=-4.0, created=1),
            _run("clean", "a", 1.0, tokens=20, errors=0, logprob=-10.0, created=2),
            _run("likely", "a", 1.0, tokens=30, errors=1, logprob=-0.3, created=3)]  # fmt: skip
    kept, dropped = curate(runs, pass_rates(runs, 1.0), CurateConfig(choose=rule), ("policy",))
    assert [r.id for r in kept] == ([chosen] if chosen else ["short", "clean", "likely"])
    assert dropped == ({"choice": 2} if chosen else {})


def test_difficulty_filter_and_per_question_cap() -> None:
    easy = [_run(f"e{i}", "e", 1.0, tokens=10 + i) for i in range(4)]
    hard = [_run("h0", "h", 1.0)] + [_run(f"h{i}", "h", 0.0) for i in range(1, 5)]
    rates = pass_rates([*easy, *hard], 1.0)
    correct = [r for r in [*easy, *hard] if r.score == 1.0]
    kept, dropped = curate(correct, rates, CurateConfig(difficulty=("hard",)), ("policy",))
    assert [r.id for r in kept] == ["h0"] and dropped == {"difficulty": 4}
    kept, _ = curate(correct, rates, CurateConfig(choose="shortest", per_question=2), ("policy",))
    assert [r.id for r in kept] == ["e0", "e1", "h0"]


def test_logprob_needs_recorded_logprobs_and_bad_config_is_named() -> None:
    runs = [_run("x", "a", 1.0), _run("y", "a", 1.0)]
    with pytest.raises(NoLogProbs, match="llama-server engine"):
        curate(runs, pass_rates(runs, 1.0), CurateConfig(choose="logprob"), ("policy",))
    with pytest.raises(ConfigError, match="choose"):
        CurateConfig(choose="longest")
    with pytest.raises(ConfigError, match="difficulty"):
        CurateConfig(difficulty=("trivial",))


def test_select_runs_grades_over_all_attempts_in_the_store(home: Path, tmp_path: Path) -> None:
    runs = [_run("e0", "e", 1.0, tokens=30, created=1), _run("e1", "e", 1.0, tokens=8, created=2),
            _run("m0", "m", 1.0, created=3), _run("m1", "m", 0.0, created=4)]  # fmt: skip
    with TrajectoryStore.open(home / "trajectories.db") as store:
        store.add_runs(runs)
        select = SelectConfig(agent="codeact", suite="gsm8k:train", curate=CurateConfig(choose="shortest"))
        selection = select_runs(store, select)
        assert sorted(r.id for r in selection.runs) == ["e1", "m0"]
        assert selection.difficulty == {"easy": 1, "medium": 1} and selection.dropped["choice"] == 1
        only_medium = dataclasses_replace(select, curate=CurateConfig(difficulty=("medium",)))
        assert [r.id for r in select_runs(store, only_medium).runs] == ["m0"]
        info = build_dataset(store, select, tmp_path / "data", val_fraction=0.0)
    assert info.difficulty == {"easy": 1, "medium": 1}
    saved = json.loads((tmp_path / "data" / "info.json").read_text())
    assert saved["select"]["curate"]["choose"] == "shortest"  # part of the dataset's version


def dataclasses_replace(config: SelectConfig, **changes: object) -> SelectConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


class _Seen:
    spec = "probe"

    def __init__(self) -> None:
        self.calls: list[tuple[float, int | None]] = []

    def generate(self, messages, *, stop=(), max_tokens=512, temperature=0.0, n=1, seed=None, on_token=None):  # noqa: ANN001, ANN201
        self.calls.append((temperature, seed))
        return [Completion(text="ok")]


def test_sampled_attempts_are_sampled_and_reproducible() -> None:
    inner = _Seen()
    model = SampledModel(inner, temperature=0.7, seed=2)
    model.generate([user("q")])
    model.generate([user("q")])
    model.generate([user("other")])
    model.generate([user("q")], temperature=0.3, seed=5)  # a call that samples already keeps its settings
    (t1, s1), (t2, s2), (_, s3), last = inner.calls
    assert t1 == t2 == 0.7 and s1 == s2 and s1 != s3 and last == (0.3, 5)
    SampledModel(inner, temperature=0.7, seed=3).generate([user("q")])
    assert inner.calls[-1][1] != s1  # another attempt, another sample
    with pytest.raises(ValueError, match="temperature > 0"):
        SampledModel(inner, temperature=0.0, seed=1)


def test_distill_dataset_cli_curates(home: Path, tmp_path: Path) -> None:
    with TrajectoryStore.open(home / "trajectories.db") as store:
        store.add_runs([_run("a0", "a", 1.0, tokens=9), _run("a1", "a", 1.0, tokens=3), _run("a2", "a", 0.0)])
    out = tmp_path / "data"
    base = ["--home", str(home), "distill", "dataset", "--agent", "codeact", "--out", str(out), "--val-fraction", "0"]
    result = CliRunner().invoke(cli, [*base, "--choose", "shortest", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["runs"] == 1 and info["difficulty"] == {"medium": 1} and info["dropped"]["choice"] == 1
    bad = CliRunner().invoke(cli, [*base, "--difficulty", "trivial"])
    assert bad.exit_code != 0 and "trivial" in bad.output and "easy" in bad.output
