"""Distilling recbot: rec-netflix sessions split without shared targets, every parser/planner/responder call as
an example of exactly what that model saw, and `distill run` end to end (scripted teacher, tiny random student)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.benchmarks.suites.rec_episode import BadEpisodeOption
from agentdistill.benchmarks.suites.rec_setup import session_graph
from agentdistill.benchmarks.suites.registry import get_suite, load_items
from agentdistill.cli import cli
from agentdistill.distill.chat_examples import examples_from_runs
from agentdistill.distill.data import SelectConfig, build_dataset, load_examples
from agentdistill.distill.workflow.plan import AgentSuiteMismatch, DistillPlan, split_items
from agentdistill.memory.catalog import Catalog, default_catalog
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder

PLAN = json.dumps({"steps": [{"tool": "filter"}, {"tool": "rank"}, {"tool": "explain"}]})
REPLY = "Reply: Here is the one you are after."
ROLES = {"parser", "planner", "responder"}


@pytest.fixture
def catalog(home: Path) -> Catalog:
    """The packaged catalog in the test's home, as `distill run --embedder hashing:64` opens it."""
    return default_catalog(home, HashingEmbedder(64))


def pin(catalog: Catalog, item_id: str) -> str:
    """A parser reply that narrows the catalog down to (nearly) this one title: what a teacher that hits writes."""
    target = catalog.get(item_id)
    pref: dict = {"type": target.type, "genres": list(target.genres), "year_min": target.release_year,
                  "year_max": target.release_year}  # fmt: skip
    if target.director or target.cast:
        pref["people"] = [(target.director or target.cast)[0]]
    return json.dumps({**pref, "hard": list(pref)})


def test_rec_sessions_split_samples_enough_sessions_and_never_shares_a_target(catalog: Catalog) -> None:
    suite = get_suite("rec-netflix")
    train, held_out = split_items(suite, None, 50, 10, catalog=catalog)
    own = load_items(suite, None, catalog=catalog)
    assert len(own) < 60 and len(train) == 50  # more sessions than the suite's own were sampled for training
    assert [i.id for i in held_out] == [i.id for i in own[:10]]  # eval = the suite's first sessions, as in bench run
    assert [i.id for i in train[:30]] == [i.id for i in own[10:40]]
    assert not {i.answers[0] for i in train} & {i.answers[0] for i in held_out}


def test_recbot_and_the_rec_suites_go_together() -> None:
    with pytest.raises(AgentSuiteMismatch, match="distill it with --agent recbot"):
        DistillPlan(agent="codeact", suite="rec-netflix", teacher="x", student="y")
    with pytest.raises(AgentSuiteMismatch, match="rec-netflix, rec-requests"):
        DistillPlan(agent="recbot", suite="gsm8k-sample", teacher="x", student="y")
    with pytest.raises(BadEpisodeOption, match="rule or llm"):
        DistillPlan(agent="recbot", suite="rec-netflix", teacher="x", student="y", options={"user": "robot"})


def test_every_recbot_call_becomes_an_example_of_what_that_model_saw(
    home: Path, catalog: Catalog, tmp_path: Path
) -> None:
    first, second = (i.answers[0] for i in load_items(get_suite("rec-netflix"), None, catalog=catalog)[:2])
    two_turns = [pin(catalog, first), PLAN, REPLY, pin(catalog, second), PLAN, "Reply: Another one."]
    bad_plan = [pin(catalog, first), "filter everything", PLAN, REPLY]
    model = ScriptedModel([*two_turns, *bad_plan, *two_turns[:3]])
    with TrajectoryStore.open(home / "t.db") as store:
        runs: dict[str, list[str]] = {}
        for session, turns in (("hit", 2), ("bad-plan", 1), ("miss", 1)):
            graph = session_graph(model, Recorder(store, agent="recbot"), catalog, {})
            for text in ("a movie please", "something else")[:turns]:
                out = graph.invoke({"question": text}, config={"configurable": {"thread_id": session}})
                assert out["status"] == "ok" and out["recommended"]
                runs.setdefault(session, []).append(out["run_id"])
        for session, ids in runs.items():  # as the rec episode scores them: every turn gets the session's score
            for run_id in ids:
                store.set_score(run_id, 0.0 if session == "miss" else 1.0, {}, suite="rec-netflix:train")
        info = build_dataset(store, SelectConfig(agent="recbot", suite="rec-netflix:train"), tmp_path / "data")
        assert info.runs == 2 and info.dropped == {"parse_error": 1, "min_score": 1}  # a bad plan is a format error
        recovered = examples_from_runs([store.get(runs["bad-plan"][0])], roles=sorted(ROLES))
    examples = [*load_examples(tmp_path / "data" / "train.jsonl"), *load_examples(tmp_path / "data" / "val.jsonl")]
    assert len(examples) == 6 and {e.role for e in examples} == ROLES
    # The first six calls were the two clean turns: each example is one call, its prompt and reply exactly.
    calls = {json.dumps([*model.history[i], {"role": "assistant", "content": two_turns[i]}]) for i in range(6)}
    assert {json.dumps(e.messages) for e in examples} == calls
    assert all(e.train_turns == (len(e.messages) - 1,) and e.agent == "recbot" for e in examples)
    # With the format filter off, the failed plan stays as context only: the loss is on the corrected plan.
    [planner] = [e for e in recovered if e.role == "planner"]
    assert planner.messages[1]["content"] == "filter everything" and planner.train_turns == (3,)


@pytest.mark.integration
def test_distill_run_recbot_end_to_end(tmp_path: Path, tiny_model_dir: Path, home: Path, catalog: Catalog) -> None:
    train, _ = split_items(get_suite("rec-netflix"), None, 6, 2, catalog=catalog)
    script = [reply for item in train for reply in (pin(catalog, item.answers[0]), PLAN, REPLY)]
    teacher = tmp_path / "teacher.json"
    teacher.write_text(json.dumps(script), encoding="utf-8")
    out = tmp_path / "out"
    plan = ["--agent", "recbot", "--suite", "rec-netflix", "--teacher", f"scripted:{teacher}", "--student",
            f"hf:{tiny_model_dir}", "--train-limit", "6", "--eval-limit", "2", "--train-steps", "2", "--batch-size",
            "2", "--grad-accum", "1", "--lora-r", "4", "--student-runtime", "transformers", "--embedder",
            "hashing:64", "--option", "max_turns=1", "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, ["--home", str(home), "distill", "run", *plan])
    assert result.exit_code == 0, result.output

    collected = [json.loads(line) for line in (out / "collect" / "results.jsonl").read_text().splitlines()]
    hits = sum(r["correct"] for r in collected)
    assert len(collected) == 6 and 0 < hits < 6  # a pinned title is not always in the top k: both kinds occur
    info = json.loads((out / "data" / "info.json").read_text())
    assert info["runs"] == hits and info["dropped"] == {"min_score": 6 - hits}  # one turn per session
    assert info["select"]["roles"] == ["parser", "planner", "responder"]
    examples = [*load_examples(out / "data" / "train.jsonl"), *load_examples(out / "data" / "val.jsonl")]
    assert len(examples) == 3 * hits and {e.role for e in examples} == ROLES
    parsed = {e.messages[-1]["content"] for e in examples if e.role == "parser"}
    assert parsed == {script[3 * i] for i, r in enumerate(collected) if r["correct"]}  # only the hits' calls

    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in metrics) == 2
    assert (out / "student" / "merged" / "config.json").is_file()
    report = json.loads(result.stdout)
    assert [r["spec"]["agent"] for r in report["runs"]] == ["recbot"] * 3
    for summary in report["compared"]:
        assert summary["n"] == 2 and {"hit_at_k", "violation_rate", "parse_accuracy"} <= set(summary)
    for label in ("teacher", "base-student", "student"):
        lines = (out / "eval" / label / "results.jsonl").read_text().splitlines()
        assert len(lines) == 2 and all("hit_by_t1" in json.loads(line)["metrics"] for line in lines)
    spec = json.loads((out / "eval" / "student" / "run.json").read_text())
    assert spec["options"] == {"max_turns": 1} and spec["embedder"] == "hashing:64"
    assert "hit@k" in (out / "report" / "compare.md").read_text()

    # The stages alone on the same --out find their work done.
    for stage in ("collect", "eval"):
        again = CliRunner().invoke(cli, ["--home", str(home), "distill", stage, *plan])
        assert again.exit_code == 0, again.output
    assert len((out / "collect" / "results.jsonl").read_text().splitlines()) == 6
