"""Token-exact trajectories: the sampled ids are recorded, stored, and trained as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.agents.factory import build_agent
from agentdistill.distill.chat_examples import ChatExample, examples_from_runs
from agentdistill.distill.encoding import IGNORE, encode_example, end_token_ids, student_tokenizer_id
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import assistant, user
from agentdistill.models.gguf_backend import gguf_unavailable_reason
from agentdistill.models.token_ids import exact_ids, ids_for_text
from agentdistill.trajectory import Recorder, Run, Step


@pytest.fixture(scope="module")
def tokenizer(student_hf_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(student_hf_dir)


def _example(tokenizer, completion_ids: list[int], text: str, *, tokenizer_id: str, finish: str = "stop"):
    messages = [user("Say hello."), assistant(text)]
    tokens = {"tokenizer": tokenizer_id, "completion": completion_ids, "finish": finish}
    return ChatExample(id="x", run_id="r", question="Say hello.", messages=messages, train_turns=(1,), tokens=tokens)


def _trained(encoded) -> list[int]:
    return [t for t in encoded.labels if t != IGNORE]


def test_ids_for_text_keeps_the_tokens_of_the_text_only() -> None:
    vocab = {1: "Thou", 2: "ght", 3: ": 4", 4: "\nObs", 5: ""}

    def decode(ids):
        return "".join(vocab[i] for i in ids)

    assert ids_for_text([1, 2, 3, 4], "Thought: 4", decode) == (1, 2, 3)  # the stop sequence's token goes
    assert ids_for_text([1, 2, 3, 5], "Thought: 4", decode) == (1, 2, 3)  # so does an end token's empty piece
    straddled = ids_for_text([1, 2, 3], "Thought: ", decode)  # the cut fell inside ": 4"
    assert straddled == (1, 2) and not exact_ids(straddled, "Thought: ", decode)
    assert exact_ids((1, 2, 3), "Thought: 4", decode)


def test_the_student_learns_the_teachers_own_split_not_its_retokenisation(tokenizer) -> None:
    text = "hello world"
    canonical = tokenizer.encode(text, add_special_tokens=False)
    by_letter = [tokenizer.convert_tokens_to_ids(c) for c in "hello"] + tokenizer.encode(
        " world", add_special_tokens=False
    )
    assert tokenizer.decode(by_letter) == text and by_letter != canonical  # same text, other tokens
    example = _example(tokenizer, by_letter, text, tokenizer_id=student_tokenizer_id(tokenizer))
    encoded = encode_example(tokenizer, example)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert encoded.token_exact
    assert _trained(encoded) == [*by_letter, end]  # exactly the sampled ids and the end of the turn
    prompt = tokenizer.apply_chat_template([user("Say hello.")], tokenize=True, add_generation_prompt=True,
                                           return_dict=False)  # fmt: skip
    assert encoded.input_ids == [*prompt, *by_letter, end]
    assert encoded.labels[: len(prompt)] == [IGNORE] * len(prompt)
    plain = encode_example(tokenizer, ChatExample(**{**example.__dict__, "tokens": None}))
    assert not plain.token_exact and canonical == _trained(plain)[: len(canonical)]


def test_another_tokenizer_or_a_mismatched_text_falls_back_to_the_text(tokenizer) -> None:
    ids = tokenizer.encode("hello world", add_special_tokens=False)
    other = encode_example(tokenizer, _example(tokenizer, ids, "hello world", tokenizer_id="tok-someone-else"),
                           student_id=student_tokenizer_id(tokenizer))  # fmt: skip
    assert not other.token_exact and _trained(other)
    student = student_tokenizer_id(tokenizer)
    wrong = encode_example(
        tokenizer, _example(tokenizer, ids[:1], "hello world", tokenizer_id=student), student_id=student
    )
    assert not wrong.token_exact  # the ids decode to less than the recorded text: not exact, re-tokenised


def test_a_teacher_that_ran_out_of_tokens_is_not_taught_to_end_there(tokenizer) -> None:
    ids = tokenizer.encode("count: 1, 2, 3", add_special_tokens=False)
    student = student_tokenizer_id(tokenizer)
    encoded = encode_example(tokenizer, _example(tokenizer, ids, "count: 1, 2, 3", tokenizer_id=student,
                                                 finish="length"), student_id=student)  # fmt: skip
    assert encoded.token_exact and _trained(encoded) == ids
    assert not end_token_ids(tokenizer) & set(_trained(encoded))


def test_the_chosen_sag_sample_gives_the_ids() -> None:
    record = {"tokenizer": "tok-1", "prompt": [5], "completions": [[1], [2]], "finish": ["stop", "stop"]}
    step = Step(run_id="r", index=0, kind="model", node="act", messages_in=[user("q")], completion="a",
                samples=["a", "b"], parsed={"sample": 1}, tokens=record)  # fmt: skip
    run = Run(id="r", agent="codeact", question="q", status="ok", score=1.0, steps=[step])
    [example] = examples_from_runs([run])
    assert example.tokens == {"tokenizer": "tok-1", "completion": [2], "finish": "stop"}
    assert example.messages[-1]["content"] == "b"
    [plain] = examples_from_runs([run], token_exact=False)
    assert plain.tokens is None


@pytest.mark.skipif(gguf_unavailable_reason() is not None, reason=f"llama.cpp unusable: {gguf_unavailable_reason()}")
def test_a_real_models_ids_round_trip_through_the_store_into_the_masks(home: Path, tokenizer) -> None:
    """SmolLM2-135M on llama.cpp records its ids; the SQLite store gives them back; the HF tokenizer of the same
    model is recognised as the same tokenizer, and the trained labels are exactly those ids and the end token."""
    from agentdistill.models import make_chat_model
    from agentdistill.models.base import ModelOptions

    model = make_chat_model("gguf:smollm2-135m", ModelOptions(threads=2))
    assert model.tokenizer == student_tokenizer_id(tokenizer)  # GGUF and HF tokenizer: same ids for the probe
    with TrajectoryStore.open(home / "trajectories.db") as store:
        graph = build_agent("cot", model, kb=None, recorder=Recorder(store, agent="cot"), max_tokens=48)
        out = graph.invoke({"question": "What is 2 + 3?"})
        run = store.get(out["run_id"])
    [step] = [s for s in run.steps if s.kind == "model"]
    assert step.tokens is not None and step.tokens["tokenizer"] == model.tokenizer
    [ids] = step.tokens["completions"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == step.completion
    prompt = tokenizer.apply_chat_template(step.messages_in, tokenize=True, add_generation_prompt=True,
                                           return_dict=False)  # fmt: skip
    assert step.tokens["prompt"] == prompt
    run.score = 1.0
    [example] = examples_from_runs([run])
    encoded = encode_example(tokenizer, example, student_id=student_tokenizer_id(tokenizer))
    assert encoded.token_exact
    trained = _trained(encoded)
    finish = step.tokens["finish"][0]
    assert trained == (ids if finish == "length" else [*ids, tokenizer.convert_tokens_to_ids("<|im_end|>")])
    assert encoded.input_ids[: len(step.tokens["prompt"])] == step.tokens["prompt"]


def test_llama_server_logprobs_entries_give_the_ids_and_openais_do_not() -> None:
    from agentdistill.models.token_ids import ids_from_logprobs

    entries = [{"id": 7, "token": "4", "bytes": [52], "logprob": -0.5},
               {"id": 9, "token": "2", "bytes": [50], "logprob": -0.25},
               {"id": 2, "token": "", "bytes": [], "logprob": -0.1}]  # fmt: skip
    assert ids_from_logprobs({"content": entries}, "42") == ((7, 9), -0.75)  # the end token is not text
    assert ids_from_logprobs({"content": [{"token": "4", "logprob": -0.5}]}, "4") is None  # OpenAI: no ids
    assert ids_from_logprobs(None, "4") is None


def test_ids_of_another_tokenizer_leave_the_calls_merged_as_text() -> None:
    record = {"tokenizer": "tok-teacher", "prompt": None, "completions": [[1]], "finish": ["stop"]}
    first = Step(run_id="r", index=0, kind="model", node="act", messages_in=[user("q")], completion="a", tokens=record)
    second = Step(run_id="r", index=1, kind="model", node="act", messages_in=[user("q"), assistant("a"), user("obs")],
                  completion="b", tokens=record)  # fmt: skip
    run = Run(id="r", agent="react", question="q", status="ok", score=1.0, steps=[first, second])
    assert len(examples_from_runs([run], tokenizer="tok-teacher")) == 2  # same tokenizer: one example per call
    [merged] = examples_from_runs([run], tokenizer="tok-student")  # another: one conversation, as before
    assert merged.tokens is None and merged.train_turns == (1, 3)
