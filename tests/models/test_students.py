"""Shipped students: `student:NAME` = a packaged base + a LoRA adapter from agentdistill/data/students/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.errors import ModelNotFound, ModelUnavailable
from agentdistill.models import ModelOptions, make_chat_model, user
from agentdistill.models.packaged import find_packaged, is_installed
from agentdistill.models.students import find_student, load_student, packaged_students


def card(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": folder.name,
        "base": "local:smollm2-135m",
        "agent": "codeact",
        "teacher": "local:qwen2.5-coder-1.5b",
    }
    (folder / "card.json").write_text(json.dumps({**data, **fields}))
    return folder


def test_an_unknown_student_lists_the_shipped_ones(tmp_path: Path) -> None:
    card(tmp_path / "codeact-gsm8k-135m")
    with pytest.raises(ModelNotFound, match=r"no student 'nope'.*\(codeact-gsm8k-135m\)"):
        load_student("nope", ModelOptions(), root=tmp_path)
    assert [c.spec for c in packaged_students(tmp_path)] == ["student:codeact-gsm8k-135m"]


def test_a_missing_base_names_the_package_to_install(tmp_path: Path) -> None:
    if is_installed(find_packaged("gemma3-270m"))[0]:
        pytest.skip("gemma3-270m is installed here")
    card(tmp_path / "gemma-student", base="local:gemma3-270m")
    with pytest.raises(ModelUnavailable, match=r"adapter over local:gemma3-270m, which is not installed.*pip install"):
        load_student("gemma-student", ModelOptions(), root=tmp_path)


@pytest.mark.integration
def test_a_student_adapter_loads_over_its_packaged_base_and_runs(tmp_path: Path) -> None:
    if not is_installed(find_packaged("smollm2-135m"))[0]:
        pytest.skip("packaged SmolLM2 not installed")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from agentdistill.models.packaged import ensure_hf_dir
    from agentdistill.paths import cache_dir

    base = AutoModelForCausalLM.from_pretrained(ensure_hf_dir(find_packaged("smollm2-135m"), cache_dir()))
    folder = card(tmp_path / "tiny-student")
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(folder)
    model = load_student("tiny-student", ModelOptions(threads=2), root=tmp_path)
    assert model.spec == "student:tiny-student"
    [reply] = model.generate([user("Say hi.")], max_tokens=3)
    assert reply.usage.completion_tokens >= 1


@pytest.mark.integration
@pytest.mark.parametrize("shipped", [c.name for c in packaged_students()] or ["(none shipped)"])
def test_every_shipped_student_loads_and_answers(shipped: str) -> None:
    if shipped == "(none shipped)":
        pytest.skip("no student is shipped")
    model = make_chat_model(f"student:{shipped}", ModelOptions(threads=2))
    [reply] = model.generate([user("What is 2 + 3?")], max_tokens=8)
    assert reply.usage.completion_tokens >= 1


@pytest.mark.integration
def test_the_shipped_gsm8k_student_solves_a_word_problem_in_its_codeact_graph(tmp_path: Path, home: Path) -> None:
    from agentdistill.agents.factory import build_agent
    from agentdistill.memory.trajectories import TrajectoryStore
    from agentdistill.trajectory import Recorder

    if find_student("codeact-gsm8k-05b") is None:
        pytest.skip("the GSM8K student is not shipped in this checkout")
    if not is_installed(find_packaged("qwen2.5-coder-0.5b"))[0]:
        pytest.skip("packaged Qwen2.5-Coder-0.5B not installed")
    model = make_chat_model("student:codeact-gsm8k-05b", ModelOptions(threads=2))
    with TrajectoryStore.open(tmp_path / "t.db") as store:
        graph = build_agent("codeact", model, kb=None, recorder=Recorder(store, agent="codeact"), max_steps=4)
        out = graph.invoke({"question": "Tom has 12 apples and buys 30 more. How many apples does he have now?"})
        assert (out["status"], out["answer"]) == ("ok", "42")
        steps = store.get(out["run_id"]).steps
        assert {s.model for s in steps if s.kind == "model"} == {"student:codeact-gsm8k-05b"}
        assert any(s.kind == "tool" for s in steps)  # it computed the answer in the sandbox, as its teacher does
