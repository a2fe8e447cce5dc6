"""FallbackModel and NodeModels with scripted students and teachers, recorded into a real trajectory store."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from pathlib import Path

import pytest

from agentdistill.errors import ConfigError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import ChatModel, Completion, user
from agentdistill.models.fallback import FallbackModel, FallbackPolicy, NodeModels
from agentdistill.models.scripted import ScriptedModel
from agentdistill.trajectory import Recorder, Run

ASK = [user("What is 6 * 7?")]


def answer_key(text: str) -> Hashable | None:
    """A tiny parser: `ANSWER: x` -> x, anything else is unparsable."""
    head, sep, rest = text.partition("ANSWER:")
    return rest.strip() or None if sep and not head.strip() else None


def student(*replies: str) -> ScriptedModel:
    return ScriptedModel(list(replies), spec="scripted:student")


def teacher(*replies: str) -> ScriptedModel:
    return ScriptedModel(list(replies), spec="scripted:teacher")


def recorded_call(home: Path, model: ChatModel, *, node: str = "think", role: str = "policy", **params) -> Run:
    """One call of `model` inside a recorded node named `node`; the run as stored."""
    with TrajectoryStore.open(home / "t.db") as store:
        recorder = Recorder(store, agent="test")
        wrapped = recorder.wrap(model, role=role)
        run_id = recorder.start("q")
        recorder.node(lambda state: wrapped.generate(ASK, **params), name=node)({"run_id": run_id})
        recorder.finish(run_id, status="ok", answer="42")
        return store.get(run_id)


def test_an_unparsable_student_reply_goes_to_the_teacher_and_is_recorded_as_a_fallback(home: Path) -> None:
    small, big = student("I think it is 42"), teacher("ANSWER: 42")
    model = FallbackModel(small, big, answer_key)
    run = recorded_call(home, model)
    [step] = run.steps
    assert (step.completion, step.model) == ("ANSWER: 42", "scripted:teacher")
    assert step.data["fallback"] == {"from": "scripted:student", "text": "I think it is 42", "reason": "unparsable"}
    assert big.history == [ASK] and big.calls[0]["temperature"] == 0.0  # the same call, as the graph asked it
    assert run.models == {"policy": "scripted:student>scripted:teacher"}
    stats = model.stats()
    assert (stats.calls, stats.student_answers, dict(stats.fallbacks)) == (1, 0, {"unparsable": 1})
    assert stats.fallback_rate == 1.0 and stats.student_tokens > 0 and stats.teacher_tokens > 0


def test_a_parsed_student_reply_is_kept_and_the_teacher_never_called(home: Path) -> None:
    big = teacher()  # an empty script: any call would raise ScriptExhausted
    model = FallbackModel(student("ANSWER: 42"), big, answer_key)
    [step] = recorded_call(home, model).steps
    assert (step.completion, step.model, step.data) == ("ANSWER: 42", "scripted:student", {})
    assert big.history == [] and model.stats().student_answers == 1


def test_samples_that_disagree_go_to_the_teacher(home: Path) -> None:
    small, big = student("ANSWER: 42", "ANSWER: 41", "ANSWER: 40"), teacher("ANSWER: 42")
    model = FallbackModel(small, big, answer_key, FallbackPolicy(samples=3, min_agreement=0.5))
    [step] = recorded_call(home, model).steps
    assert step.model == "scripted:teacher" and step.data["fallback"]["reason"] == "disagree"
    assert step.data["fallback"]["samples"] == ["ANSWER: 42", "ANSWER: 41", "ANSWER: 40"]
    assert small.calls == [{"stop": [], "max_tokens": 512, "temperature": 0.7, "n": 3}]  # sampled, not greedy
    assert big.calls[0]["n"] == 1 and big.calls[0]["temperature"] == 0.0


def test_agreeing_samples_keep_the_students_majority_and_never_call_the_teacher(home: Path) -> None:
    big = teacher()
    small = student("ANSWER: 41", "ANSWER:  42", "ANSWER: 42")
    model = FallbackModel(small, big, answer_key, FallbackPolicy(samples=3, min_agreement=0.6))
    [step] = recorded_call(home, model).steps
    assert (step.completion, step.model, step.samples) == ("ANSWER:  42", "scripted:student", [])
    assert big.history == [] and model.stats().fallbacks == {}


def test_a_majority_of_unparsable_samples_is_unparsable() -> None:
    model = FallbackModel(student("ANSWER: 42", "no", "nope"), teacher("ANSWER: 42"), answer_key,
                          FallbackPolicy(samples=3))  # fmt: skip
    [out] = model.generate(ASK)
    assert out.fallback is not None and out.fallback["reason"] == "unparsable" and out.model == "scripted:teacher"


def test_a_callers_own_samples_pass_through_and_fall_back_only_when_none_parses() -> None:
    model = FallbackModel(student("junk", "ANSWER: 7"), teacher(), answer_key, FallbackPolicy(samples=5))
    out = model.generate(ASK, n=2, temperature=0.7)
    assert [c.text for c in out] == ["junk", "ANSWER: 7"] and {c.model for c in out} == {"scripted:student"}
    model = FallbackModel(student("junk", "more junk"), teacher("ANSWER: 1", "ANSWER: 2"), answer_key)
    out = model.generate(ASK, n=2, temperature=0.7)
    assert [c.text for c in out] == ["ANSWER: 1", "ANSWER: 2"] and all(c.fallback for c in out)


def test_listeners_see_exactly_the_text_returned() -> None:
    heard: list[str] = []
    model = FallbackModel(student("ANSWER: 42 it is"), teacher(), answer_key)
    [out] = model.generate(ASK, on_token=heard.append)
    assert heard == ["ANSWER: 42 it is"] == [out.text]  # held back until it parsed, then sent in one piece
    heard.clear()
    model = FallbackModel(student("not sure"), teacher("ANSWER: 42 it is"), answer_key)
    [out] = model.generate(ASK, on_token=heard.append)
    assert "".join(heard) == out.text == "ANSWER: 42 it is" and len(heard) > 1  # the teacher streams live


def test_stats_add_up_across_threads() -> None:
    replies = ["ANSWER: 1", "nope"] * 20
    model = FallbackModel(ScriptedModel(replies, spec="s"), ScriptedModel(["ANSWER: 2"], repeat_last=True), answer_key)
    threads = [threading.Thread(target=model.generate, args=(ASK,)) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = model.stats()
    assert stats.calls == 40 and stats.student_answers + stats.fallbacks["unparsable"] == 40


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"samples": 0}, "samples"), ({"samples": 3, "temperature": 0.0}, "temperature"),
     ({"min_agreement": 0.0}, "min_agreement"), ({"min_agreement": 1.5}, "min_agreement")],
)  # fmt: skip
def test_policy_rejects_bad_values_naming_the_field(fields: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        FallbackPolicy(**fields)


def test_node_models_route_by_role_and_by_node(home: Path) -> None:
    small, big = student("ANSWER: s"), teacher("ANSWER: t", "ANSWER: t2")
    models = NodeModels(big, {"decompose": small})
    assert models.spec == "scripted:teacher[decompose=scripted:student]"
    assert recorded_call(home, models, node="decompose").steps[0].model == "scripted:student"
    other = recorded_call(home, models, node="answer").steps[0]
    assert (other.model, other.completion) == ("scripted:teacher", "ANSWER: t")
    by_role = recorded_call(home, NodeModels(big, {"parser": student("ANSWER: p")}), role="parser", node="parse")
    assert by_role.steps[0].model == by_role.models["parser"] == "scripted:student"
    assert models.generate(ASK)[0].text == "ANSWER: t2"  # outside a recorder: the default


def test_node_models_map_wraps_every_model() -> None:
    class Tagged:
        def __init__(self, inner: ChatModel) -> None:
            self.inner, self.spec = inner, f"tagged:{inner.spec}"

        def generate(self, messages, **params) -> list[Completion]:  # noqa: ANN001 - a test double
            return self.inner.generate(messages, **params)

    mapped = NodeModels(teacher(), {"decompose": student()}).map(Tagged)
    assert mapped.spec == "tagged:scripted:teacher[decompose=tagged:scripted:student]"
