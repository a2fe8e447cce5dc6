"""`chat --agent materials` on a thread (real SQLite checkpoints, the shipped records store, a scripted model):
a follow-up question sees the earlier turn, and each turn is one trajectory holding every level's calls."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agentdistill.commands.chat import chat
from agentdistill.memory.trajectories import TrajectoryStore


def test_a_materials_thread_carries_earlier_turns_to_the_supervisor(home: Path) -> None:
    replies = [
        "Delegate: data\nTask: What is the magnetic ordering of YPt3?",
        'Thought: look it up\nAction: search_formula\nAction Input: {"formula": "YPt3"}',
        "Final Answer: NM (mp-2403)",
        "Final Answer: YPt3 is non-magnetic (mp-2403)",
        "Delegate: data\nTask: What is the band gap of mp-5777?",
        'Thought: fetch it\nAction: get_record\nAction Input: {"material_id": "mp-5777", "fields": ["band_gap"]}',
        "Final Answer: see the observation",
        "Final Answer: its band gap is 2.293 eV (mp-5777)",
    ]
    script = home / "script.json"
    script.write_text(json.dumps(replies), encoding="utf-8")
    stdin = "What is the magnetic ordering of YPt3?\nand the band gap of mp-5777?\n/exit\n"
    result = CliRunner().invoke(chat, ["--agent", "materials", "--model", f"scripted:{script}", "--thread", "m1"],
                                input=stdin, catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "answer: YPt3 is non-magnetic (mp-2403)" in result.output
    with TrajectoryStore.open(home / "trajectories.db") as store:
        first, second = store.runs()
    assert (first.agent, first.meta, second.meta) == ("materials", {"thread_id": "m1", "turn": 0},
                                                      {"thread_id": "m1", "turn": 1})  # fmt: skip
    roles = [s.role for s in first.steps if s.kind == "model"]
    assert roles == ["supervisor", "data.policy", "data.policy", "supervisor"]
    observation = next(s.observation for s in first.steps if s.kind == "tool")
    assert "mp-2403 YPt3" in observation  # the shipped sample's record, found by the real store
    opening = next(s for s in second.steps if s.kind == "model").messages_in[-1]["content"]
    assert opening.startswith(
        "Earlier in this conversation:\nQ: What is the magnetic ordering of YPt3?\n"
        "A: YPt3 is non-magnetic (mp-2403)\n\nQuestion: and the band gap of mp-5777?"
    )
    record = next(s.observation for s in second.steps if s.kind == "tool")
    assert record.startswith("mp-5777 BaTiO3") and "band_gap: 2.293 eV" in record
