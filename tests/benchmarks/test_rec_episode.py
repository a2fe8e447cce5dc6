"""The simulator loop: a fake graph honouring recbot's output contract, the real recbot graph with a scripted model,
and whole sessions through `run_benchmark` (scores on every turn's run, errors, resume)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agentdistill.agents.factory import build_agent
from agentdistill.agents.recbot_schema import Preference
from agentdistill.benchmarks.results import RunDir, RunSpec
from agentdistill.benchmarks.runner import RunnerConfig, run_benchmark
from agentdistill.benchmarks.suites.rec_episode import (
    EpisodeSettings,
    make_episode,
    run_episode,
    split_options,
)
from agentdistill.benchmarks.suites.rec_sessions import RecSession, sample_sessions, session_item
from agentdistill.benchmarks.suites.rec_users import RuleUser, Utterance
from agentdistill.errors import AgentDistillError
from agentdistill.memory.catalog import Catalog, CatalogQuery
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder

Picker = Callable[[int, str], Sequence[str]]  # (turn number, user message) -> recommended ids


class FakeRecGraph:
    """Honours recbot's output contract and nothing more: each turn is a recorded run with scripted picks."""

    def __init__(self, recorder: Recorder, picker: Picker, preference: Callable[[str], dict] | None = None) -> None:
        self.recorder, self.picker, self.preference = recorder, picker, preference
        self.turns: dict[str, int] = {}
        self.messages: list[str] = []

    def invoke(self, inputs: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        thread = (config or {})["configurable"]["thread_id"]
        self.turns[thread] = self.turns.get(thread, 0) + 1
        question = inputs["question"]
        self.messages.append(question)
        run_id = self.recorder.start(question, meta={"thread_id": thread})
        picks = list(self.picker(self.turns[thread], question))
        answer = f"Try: {', '.join(picks)}"
        self.recorder.finish(run_id, status="ok", answer=answer)
        preference = self.preference(question) if self.preference else Preference().model_dump()
        return {"answer": answer, "status": "ok", "run_id": run_id, "recommended": picks, "preference": preference,
                "notices": [], "clarification": False, "shown": []}  # fmt: skip


@pytest.fixture
def store(home: Path):  # noqa: ANN201
    with TrajectoryStore.open(home / "trajectories.db") as opened:
        yield opened


def first_session(catalog: Catalog) -> RecSession:
    return sample_sessions(catalog, 1, seed=11)[0]


def test_the_loop_stops_at_the_first_hit_and_scores_each_turn(catalog: Catalog, store: TrajectoryStore) -> None:
    session = first_session(catalog)
    wrong = [i.id for i in catalog.filter(CatalogQuery(types=("Movie", "TV Show")), limit=60)
             if i.id != session.target_id and session.hidden.violations(i)][:5]  # fmt: skip
    graph = FakeRecGraph(Recorder(store, agent="fake"), lambda n, _: wrong if n == 1 else ["nope", session.target_id])
    result = run_episode(graph, store, session, RuleUser(catalog), catalog, max_turns=5, k=5, thread_id=session.id)
    assert result.hits == (False, True) and result.hit_turn == 2 and result.status == "ok"
    assert len(graph.messages) == 2 and graph.messages[1] != graph.messages[0]  # the user reacted to turn 1
    assert [t.violating for t in result.turns] == [5, 1]  # the unknown id "nope" counts as a violation
    assert result.turns[1].titles == ("?", catalog.get(session.target_id).title)
    assert result.violation_rate == pytest.approx(6 / 7)
    assert [store.get(r).question for r in result.run_ids] == graph.messages  # one recorded run per turn


class SpyUser:
    """The rule user, remembering what it has stated after each message (a perfect parser would know this)."""

    def __init__(self, catalog: Catalog) -> None:
        self.inner = RuleUser(catalog)
        self.stated: list[CatalogQuery] = []

    def start(self, session: RecSession) -> SpyUser:
        self.dialogue = self.inner.start(session)
        return self

    def opening(self) -> Utterance:
        return self._keep(self.dialogue.opening())

    def react(self, recommended: Sequence[Any], *, answer: str, clarification: bool) -> Utterance:
        return self._keep(self.dialogue.react(recommended, answer=answer, clarification=clarification))

    def _keep(self, utterance: Utterance) -> Utterance:
        self.stated.append(utterance.stated)
        return utterance


def test_parse_accuracy_compares_the_agents_preference_with_what_was_said(
    catalog: Catalog, store: TrajectoryStore
) -> None:
    session = first_session(catalog)
    user = SpyUser(catalog)
    graph = FakeRecGraph(Recorder(store, agent="fake"), lambda n, _: [], lambda _: _as_preference(user.stated[-1]))
    perfect = run_episode(graph, store, session, user, catalog, max_turns=3, thread_id="t1")
    assert len(perfect.turns) == 3 and all(t.parse_accuracy == 1.0 for t in perfect.turns) and not perfect.hit
    blank = FakeRecGraph(Recorder(store, agent="fake"), lambda n, _: [])
    lost = run_episode(blank, store, session, RuleUser(catalog), catalog, max_turns=2, thread_id="t2")
    assert all(t.parse_accuracy == 0.0 for t in lost.turns)  # every stated field missed


def _as_preference(query: CatalogQuery) -> dict:
    data = query.to_dict()
    if "types" in data:
        data["type"] = data.pop("types")[0]
    return Preference.model_validate(data).model_dump()


def test_the_real_recbot_graph_through_the_simulator(
    catalog: Catalog, store: TrajectoryStore, recbot_model: Callable[..., ScriptedModel]
) -> None:
    """recbot with a scripted parser/planner/responder: multi-turn through its checkpointer, every call recorded."""
    sessions = sample_sessions(catalog, 6, seed=8)
    results = []
    for session in sessions:
        model = recbot_model()
        graph = build_agent("recbot", model, kb=None, recorder=Recorder(store, agent="recbot"), catalog=catalog,
                            checkpointer=InMemorySaver())  # fmt: skip
        results.append(run_episode(graph, store, session, RuleUser(catalog), catalog, thread_id=session.id))
    assert all(r.status == "ok" for r in results)
    assert sum(r.hit for r in results) >= 3  # a perfect parser and the default plan find most targets
    assert all(t.parse_accuracy == 1.0 and t.stated_violating == 0 for r in results for t in r.turns)
    multi = next(r for r in results if len(r.turns) > 1)
    runs = [store.get(run_id) for run_id in multi.run_ids]
    assert len({r.id for r in runs}) == len(runs) and all(r.status == "ok" for r in runs)
    assert [s.role for s in runs[1].steps if s.kind == "model"] == ["parser", "planner", "responder"]
    second_prompt = next(s for s in runs[1].steps if s.role == "parser").messages_in[0]["content"]
    assert multi.turns[1].user in second_prompt and multi.turns[0].titles[0] in second_prompt  # sees earlier picks
    shown_before = {i for t in multi.turns[:-1] for i in t.recommended}
    assert not shown_before & set(multi.turns[-1].recommended)  # nothing is recommended twice


def test_sessions_through_the_runner_score_every_turn_and_resume(
    catalog: Catalog, store: TrajectoryStore, tmp_path: Path, recbot_model: Callable[..., ScriptedModel]
) -> None:
    items = [session_item(s, catalog) for s in sample_sessions(catalog, 4, seed=8)]
    run_dir = RunDir.create(tmp_path / "run", RunSpec("rec-netflix", "recbot", "scripted:recbot",
                                                      tuple(i.id for i in items)))  # fmt: skip
    settings, agent_options = split_options({"max_turns": 3, "k": 5})
    assert settings == EpisodeSettings(max_turns=3, k=5) and agent_options == {"k": 5}
    built: list[str] = []

    def make_graph(recorder: Recorder) -> Any:
        built.append(recorder.meta["item_id"])
        return build_agent("recbot", recbot_model(), kb=None, recorder=recorder, catalog=catalog,
                           checkpointer=InMemorySaver(), **agent_options)  # fmt: skip

    def bench(todo: Sequence[Any]) -> Any:
        return run_benchmark(run_dir, todo, make_graph=make_graph, store=store,
                             episode=make_episode("simulated", catalog, settings), config=RunnerConfig(progress=False),
                             model_spec="scripted:recbot", prices={})  # fmt: skip

    bench(items[:4])
    lines = run_dir.results_path.read_text().splitlines()
    run_dir.results_path.write_text("\n".join(lines[:2]) + "\n")  # as if killed after two sessions
    summary = bench(items)
    assert built[4:] == [items[2].id, items[3].id]  # only the unfinished sessions ran again
    results = {r.item_id: r for r in run_dir.results()}
    assert len(results) == 4 and summary.n == 4
    for r in results.values():
        assert r.status == "ok" and r.correct == bool(r.metrics["hit"]) and r.gold == (r.item_id.split("-", 2)[2],)
        turns = r.meta["transcript"]
        run_ids = r.meta.get("run_ids", [r.run_id])
        assert len(run_ids) == len(turns) == r.metrics["turns"] <= 3 and r.run_id == run_ids[-1]
        for run_id in run_ids:  # each turn's run carries the session's score, so distill can pick any turn
            run = store.get(run_id)
            assert (run.score, run.suite, run.item_id) == (float(r.correct), "rec-netflix", r.item_id)
        assert r.steps == 3 * len(turns) and r.prompt_tokens > 0


def test_a_crashing_session_is_an_error_with_its_turns_scored_zero(
    catalog: Catalog, store: TrajectoryStore, tmp_path: Path
) -> None:
    items = [session_item(s, catalog) for s in sample_sessions(catalog, 2, seed=8)]
    run_dir = RunDir.create(tmp_path / "run", RunSpec("rec-netflix", "fake", "m", tuple(i.id for i in items)))

    def picker(n: int, _: str) -> Sequence[str]:
        if n == 2:
            raise RuntimeError("catalog exploded")
        return []

    summary = run_benchmark(
        run_dir, items, make_graph=lambda rec: FakeRecGraph(rec, picker), store=store,
        episode=make_episode("simulated", catalog, EpisodeSettings()), config=RunnerConfig(progress=False),
        model_spec="m", prices={},
    )  # fmt: skip
    assert summary.errors == 2
    for r in run_dir.results():
        assert r.status == "error" and "catalog exploded" in (r.error or "") and not r.correct
        assert len(r.meta["run_ids"]) == 2  # the finished first turn and the crashed second one
        assert all(store.get(i).score == 0.0 for i in r.meta["run_ids"])


def test_bad_simulator_options_are_refused() -> None:
    with pytest.raises(AgentDistillError, match="user='robot'"):
        split_options({"user": "robot"})
    with pytest.raises(AgentDistillError, match="max_turns"):
        split_options({"max_turns": 0})
