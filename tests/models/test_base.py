from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.errors import ModelNotFound, UnknownModelSpec
from agentdistill.models import make_chat_model, user
from agentdistill.models.base import StopStreamer, cut_at_stop
from agentdistill.models.scripted import ScriptedModel, ScriptExhausted


def test_cut_at_stop_takes_the_earliest_stop() -> None:
    assert cut_at_stop("a Observation: b Final", ["Final", "Observation:"]) == ("a ", True)
    assert cut_at_stop("plain", ["X"]) == ("plain", False)
    assert cut_at_stop("plain", []) == ("plain", False)


def test_streamer_never_emits_text_past_a_stop_even_when_split_across_deltas() -> None:
    seen: list[str] = []
    streamer = StopStreamer(["\nObservation:"], seen.append)
    for delta in ["Action: search", "\nObs", "erv", "ation: invented"]:
        if streamer.feed(delta):
            break
    assert streamer.finish() == "Action: search" == "".join(seen)


def test_streamer_releases_a_held_prefix_that_was_not_a_stop() -> None:
    seen: list[str] = []
    streamer = StopStreamer(["\nObservation:"], seen.append)
    for delta in ["a\nOb", "ject"]:
        streamer.feed(delta)
    assert streamer.finish() == "a\nObject" == "".join(seen)


def test_scripted_model_applies_stops_streams_and_keeps_history(tmp_path: Path) -> None:
    model = ScriptedModel(["Thought: x\nObservation: made up", lambda msgs: f"echo {msgs[-1]['content']}"])
    seen: list[str] = []
    [first] = model.generate([user("hi")], stop=["\nObservation:"], on_token=seen.append)
    assert first.text == "Thought: x" == "".join(seen) and first.usage.completion_tokens == 2
    assert model.generate([user("there")])[0].text == "echo there"
    assert model.history == [[user("hi")], [user("there")]]
    with pytest.raises(ScriptExhausted):
        model.generate([user("again")])


def test_scripted_spec_loads_a_file(tmp_path: Path) -> None:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps(["one", "two"]))
    model = make_chat_model(f"scripted:{file}")
    assert [model.generate([user("q")])[0].text for _ in range(2)] == ["one", "two"]
    with pytest.raises(ModelNotFound, match="does not exist"):
        make_chat_model(f"scripted:{tmp_path / 'missing.json'}")


def test_unknown_spec_suggests_the_closest_prefix() -> None:
    with pytest.raises(UnknownModelSpec, match="Did you mean 'openai:'"):
        make_chat_model("opneai:gpt-4o-mini")
    with pytest.raises(UnknownModelSpec):
        make_chat_model("no-colon")
