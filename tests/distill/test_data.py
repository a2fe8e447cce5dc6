"""Distillation data: selection filters, merged multi-turn examples, masks with the real student template, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.agents.react import build_react_graph
from agentdistill.commands.distill_data import dataset
from agentdistill.config import Settings
from agentdistill.distill.chat_examples import (
    MIN_VAL_QUESTIONS,
    ChatExample,
    content_hash,
    dedupe,
    examples_from_runs,
    normalize_question,
    split_by_question,
)
from agentdistill.distill.data import (
    EmptySelection,
    SelectConfig,
    build_dataset,
    encode_examples,
    load_examples,
    save_examples,
    select_runs,
)
from agentdistill.distill.encoding import IGNORE, TemplateError, _spans_by_offsets, collate, encode_example
from agentdistill.distill.hf_export import to_hf_dataset
from agentdistill.errors import InputDataError
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models.base import assistant, system, user
from agentdistill.models.scripted import ScriptedModel
from agentdistill.tools.base import Tool
from agentdistill.trajectory import Recorder, Run, Step, StepError

ACT = 'Thought: look it up\nAction: search\nAction Input: {{"query": "{q}"}}'


def search(query: str, k: int = 3) -> str:
    """Search the knowledge base for `query`."""
    if query == "explode":
        raise RuntimeError("index offline")
    return f"[1] Passage about {query}."


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def store(home: Path) -> TrajectoryStore:
    with TrajectoryStore.open(home / "trajectories.db") as opened:
        yield opened


def react_run(store: TrajectoryStore, question: str, replies: list[str], *, score: float | None = 1.0,
              max_steps: int = 6, suite: str | None = "toy", spec: str = "scripted:teacher",
              search_first: int = 0) -> Run:  # fmt: skip
    """Run the real ReAct graph with a scripted model; the run is recorded exactly as a teacher's would be.

    The graph's opening search is off unless asked for, so turn indices below count the model's turns only."""
    graph = build_react_graph(
        ScriptedModel(replies, spec=spec), [Tool.from_function(search)], max_steps=max_steps,
        recorder=Recorder(store, agent="react"), search_first=search_first,
    )  # fmt: skip
    out = graph.invoke({"question": question})
    if score is not None:
        store.set_score(out["run_id"], score, {"em": score}, suite=suite)
    return store.get(out["run_id"])


def fill_store(store: TrajectoryStore) -> dict[str, Run]:
    """One run per filter case."""
    return {
        "good": react_run(store, "Capital of Australia?", [ACT.format(q="capital"), "Final Answer: Canberra"]),
        "recovered": react_run(
            store, "Tallest tower?", [ACT.format(q="explode"), ACT.format(q="tower"), "Final Answer: Burj Khalifa"]
        ),  # fmt: skip
        "parse_error": react_run(store, "Largest ocean?", ["I think maybe", "Final Answer: Pacific"]),
        "max_steps": react_run(store, "Longest river?", [ACT.format(q="river")] * 2, score=0.0, max_steps=2),
        "wrong": react_run(store, "Smallest country?", [ACT.format(q="country"), "Final Answer: Monaco"], score=0.0),
    }


def labelled_spans(encoded) -> list[list[int]]:
    spans, current = [], []
    for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def three_turns() -> ChatExample:
    messages = [
        system("You solve tasks."), user("Q1: 2+2?"), assistant("Thought: add\nAction: calc"),
        user("Observation: 4"), assistant("It is 4.\n"), user("Sure?"), assistant("Final Answer: 4"),
    ]  # fmt: skip
    return ChatExample(id=content_hash(messages, (2, 4, 6), "positive"), run_id="r", question="2+2?",
                       messages=messages, train_turns=(2, 4, 6))  # fmt: skip


# -- masks -----------------------------------------------------------------------------------------------------
def test_masks_cover_exactly_the_assistant_tokens_of_a_three_turn_conversation(tokenizer) -> None:
    example = three_turns()
    encoded = encode_example(tokenizer, example)
    assert encoded.input_ids == tokenizer.apply_chat_template(example.messages, tokenize=True, return_dict=False)
    decoded = [tokenizer.decode(span) for span in labelled_spans(encoded)]
    assert decoded == [example.messages[i]["content"] + "<|im_end|>" for i in (2, 4, 6)]
    # Nothing else carries loss: not the system/user turns, not the "<|im_start|>assistant\n" headers.
    labelled = sum(label != IGNORE for label in encoded.labels)
    assert labelled == sum(len(s) for s in labelled_spans(encoded)) < len(encoded.input_ids) // 2


def test_only_train_turns_carry_loss(tokenizer) -> None:
    example = three_turns()
    partial = ChatExample(**{**example.__dict__, "train_turns": (6,)})
    assert [tokenizer.decode(s) for s in labelled_spans(encode_example(tokenizer, partial))] == [
        "Final Answer: 4<|im_end|>"
    ]


def test_offset_fallback_agrees_with_the_token_prefix_path(tokenizer) -> None:
    example = three_turns()
    ids, spans = _spans_by_offsets(tokenizer, example.messages, example.train_turns)
    encoded = encode_example(tokenizer, example)
    assert ids == encoded.input_ids
    assert [ids[a:b] for a, b in spans] == labelled_spans(encoded)


def test_a_template_that_rewrites_earlier_turns_is_refused(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # Like templates that drop reasoning from all but the last assistant turn: earlier renders change.
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}{% if loop.last %} (last){% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(TemplateError, match="prefix-consistently"):
        encode_example(tok, three_turns())


def test_length_cap_drops_long_examples_and_counts_them(tokenizer) -> None:
    short = three_turns()
    long_messages = [user("Q? " + "word " * 300), assistant("A " * 50)]
    long = ChatExample(id="x", run_id="r", question="Q?", messages=long_messages, train_turns=(1,))
    limit = len(encode_example(tokenizer, short).input_ids)
    encoded, cut = encode_examples(tokenizer, [short, long, short], max_len=limit)
    assert (len(encoded), cut) == (2, 1)
    assert all(len(e.input_ids) <= limit for e in encoded)


def test_collate_pads_right_and_marks_negatives(tokenizer) -> None:
    example = three_turns()
    negative = ChatExample(**{**example.__dict__, "id": "neg", "label": "negative", "train_turns": (6,)})
    [a, b], _ = encode_examples(tokenizer, [example, negative], max_len=4096)
    short = type(b)(b.example_id, b.input_ids[:10], b.labels[:9] + [b.input_ids[9]], b.label)
    batch = collate([a, short], pad_id=0)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(a.input_ids))
    assert batch["attention_mask"][1].sum().item() == 10 and batch["attention_mask"][0].all()
    assert (batch["labels"][1, 10:] == IGNORE).all() and (batch["input_ids"][1, 10:] == 0).all()
    assert batch["is_negative"].tolist() == [False, True] and batch["example_ids"] == [example.id, "neg"]


# -- selection -----------------------------------------------------------------------------------------------------
def test_filters_keep_correct_and_recovered_runs_and_drop_the_rest(store: TrajectoryStore) -> None:
    runs = fill_store(store)
    assert any(s.error and s.error.kind == "tool_exception" for s in runs["recovered"].steps)
    selection = select_runs(store, SelectConfig(agent="react"))
    assert [r.id for r in selection.runs] == [runs["good"].id, runs["recovered"].id]
    assert selection.dropped == {"parse_error": 1, "max_steps": 1, "min_score": 1}
    assert selection.considered == 5
    strict = select_runs(store, SelectConfig(agent="react", keep_recovered_errors=False))
    assert [r.id for r in strict.runs] == [runs["good"].id] and strict.dropped["recovered_error"] == 1
    lenient = select_runs(store, SelectConfig(agent="react", drop_parse_errors=False))
    assert runs["parse_error"].id in {r.id for r in lenient.runs}


def test_model_glob_and_limit(store: TrajectoryStore) -> None:
    react_run(store, "Q one?", ["Final Answer: 1"], spec="local:qwen2.5-coder-1.5b")
    react_run(store, "Q two?", ["Final Answer: 2"], spec="openai:gpt-4o-mini")
    react_run(store, "Q three?", ["Final Answer: 3"], spec="local:qwen2.5-coder-0.5b")
    selection = select_runs(store, SelectConfig(agent="react", model="local:qwen*", limit=1))
    assert [r.question for r in selection.runs] == ["Q one?"]
    assert selection.dropped == {"model": 1, "limit": 1}


def test_empty_selection_says_which_filter_removed_what(store: TrajectoryStore) -> None:
    runs = fill_store(store)
    store.set_score(runs["good"].id, 0.0, {})
    store.set_score(runs["recovered"].id, 0.0, {})
    with pytest.raises(EmptySelection) as info:
        select_runs(store, SelectConfig(agent="react"))
    assert str(info.value).startswith(
        "0 runs left: 5 runs of agent react; removed 3 by min_score=1, 1 by parse errors, 1 by max_steps."
    )
    with pytest.raises(EmptySelection, match="no runs of agent codeact in suite gsm8k"):
        select_runs(store, SelectConfig(agent="codeact", suite="gsm8k"))


# -- examples ------------------------------------------------------------------------------------------------------
def test_growing_react_steps_merge_into_one_conversation(store: TrajectoryStore) -> None:
    replies = [ACT.format(q="capital"), ACT.format(q="population"), "Thought: done\nFinal Answer: 467,000"]
    run = react_run(store, "How many live in the capital?", replies)
    [example] = examples_from_runs([run])
    model_steps = [s for s in run.steps if s.kind == "model"]
    assert example.messages == [*model_steps[-1].messages_in, assistant(replies[-1])]
    assert example.train_turns == (2, 4, 6)
    assert [example.messages[i]["content"] for i in example.train_turns] == replies
    assert example.meta["steps"] == [s.index for s in model_steps] and example.question == run.question
    assert example.model == "scripted:teacher" and example.label == "positive"


def test_the_graphs_opening_search_is_context_never_a_trained_turn(store: TrajectoryStore) -> None:
    replies = [ACT.format(q="population"), "Thought: done\nFinal Answer: 467,000"]
    run = react_run(store, "How many live in the capital?", replies, search_first=3)
    [example] = examples_from_runs([run])
    # system, then the question with the graph's search under it, then the model's own turns
    assert "Passage about How many live" in example.messages[1]["content"] and example.train_turns == (2, 4)
    assert [example.messages[i]["content"] for i in example.train_turns] == replies


def manual_run(store: TrajectoryStore, steps: list[Step], *, question: str = "Q?") -> Run:
    run = Run(id=f"run-{len(store.runs())}", agent="codeact", question=question, models={"policy": "m"})
    store.start_run(run)
    for index, step in enumerate(steps):
        step.run_id, step.index = run.id, index
        store.append_step(step)
    store.finish_run(run.id, status="ok", answer="4")
    store.set_score(run.id, 1.0, {})
    return store.get(run.id)


def test_sag_trains_only_the_chosen_sample_and_unrelated_calls_stay_apart(store: TrajectoryStore) -> None:
    prompt = [user("Q?")]
    samples = ["Thought: a\n```py\nprint(5)\n```", "Thought: b\n```py\nprint(3)\n```", "Thought: c\n```py\nx=4\n```"]
    run = manual_run(store, [
        Step(run_id="", index=0, kind="model", node="think", messages_in=prompt, completion=samples[0],
             samples=samples, parsed={"code": "x=4", "sample": 2}),
        Step(run_id="", index=1, kind="model", node="ftp", role="first_thought", messages_in=[user("Think")],
             completion="Thought: sure"),
        Step(run_id="", index=2, kind="model", node="other", messages_in=[user("Unrelated prompt")], completion="B"),
    ])  # fmt: skip
    examples = examples_from_runs([run])
    assert [e.messages[-1]["content"] for e in examples] == [samples[2], "B"]  # first_thought role not selected
    assert all(s not in json.dumps([e.messages for e in examples]) for s in samples[:2])


def test_parse_error_turns_are_context_for_positives_and_trained_for_negatives(store: TrajectoryStore) -> None:
    run = react_run(store, "Largest ocean?", ["I think maybe", "Final Answer: Pacific"])
    [positive] = examples_from_runs([run])
    [negative] = examples_from_runs([run], label="negative")
    assert positive.train_turns == (4,) and negative.train_turns == (2, 4)
    assert negative.label == "negative" and positive.id != negative.id


def test_dedupe_removes_identical_content_from_different_runs(store: TrajectoryStore) -> None:
    replies = [ACT.format(q="capital"), "Final Answer: Canberra"]
    runs = [react_run(store, "Capital?", replies) for _ in range(3)] + [react_run(store, "Other?", replies)]
    examples = examples_from_runs(runs)
    kept, removed = dedupe(examples)
    assert (len(kept), removed) == (2, 2)
    assert [e.run_id for e in kept] == [runs[0].id, runs[3].id]


def test_split_by_question_never_leaks_a_question_into_val() -> None:
    questions = [f"What is {i} + {i}?" for i in range(20)]
    variants = (
        [q for q in questions] + [q.upper().replace("?", "") for q in questions] + [f"  {q}  " for q in questions]
    )
    examples = [ChatExample(id=str(i), run_id=str(i), question=q, messages=[user(q), assistant("x")], train_turns=(1,))
                for i, q in enumerate(variants)]  # fmt: skip
    train, val = split_by_question(examples, 0.2, seed=3)
    train_q, val_q = {normalize_question(e.question) for e in train}, {normalize_question(e.question) for e in val}
    assert not train_q & val_q and len(val_q) == 4 and len(train) + len(val) == 60 and len(val) == 12
    assert split_by_question(examples, 0.2, seed=3) == (train, val)
    assert {e.id for e in split_by_question(examples, 0.2, seed=4)[1]} != {e.id for e in val}


def test_a_selection_of_few_questions_trains_on_all_of_them() -> None:
    examples = [ChatExample(id=str(i), run_id=str(i), question=f"Q{i}?", messages=[user("q"), assistant("x")],
                            train_turns=(1,)) for i in range(MIN_VAL_QUESTIONS - 1)]  # fmt: skip
    assert split_by_question(examples, 0.5, seed=0) == (examples, [])
    more = [*examples, ChatExample(id="x", run_id="x", question="Qx?", messages=[user("q"), assistant("x")],
                                   train_turns=(1,))]  # fmt: skip
    assert len(split_by_question(more, 0.01, seed=0)[1]) == 1  # from 10 questions on, a val set of at least one


# -- files ---------------------------------------------------------------------------------------------------------
def test_jsonl_round_trip_and_bad_line_names_file_and_line(tmp_path: Path) -> None:
    example = three_turns()
    negative = ChatExample(**{**example.__dict__, "id": "n", "label": "negative", "meta": {"score": 0.0}})
    path = tmp_path / "train.jsonl"
    save_examples(path, [example, negative])
    assert load_examples(path) == [example, negative]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    with pytest.raises(InputDataError, match=rf"{path}:2: not valid JSON"):
        load_examples(path)
    path.write_text(lines[0] + "\n" + json.dumps({**json.loads(lines[1]), "train_turns": [1]}) + "\n")
    with pytest.raises(InputDataError, match=rf"{path}:2: not a chat example: train_turns \[1\]"):
        load_examples(path)


def test_hf_dataset_columns() -> None:
    example = three_turns()
    data = to_hf_dataset([example])
    assert set(data.column_names) == {"id", "run_id", "question", "messages", "train_turns", "label", "agent",
                                      "model", "role", "meta", "tokens"}  # fmt: skip
    row = data[0]
    assert row["messages"] == example.messages and row["train_turns"] == [2, 4, 6] and json.loads(row["meta"]) == {}


def test_build_dataset_writes_splits_negatives_and_info(store: TrajectoryStore, tmp_path: Path) -> None:
    runs = fill_store(store)
    for i in range(8):
        react_run(store, f"Question number {i}?", [f"Final Answer: {i}"])
    out = tmp_path / "ds"
    info = build_dataset(store, SelectConfig(agent="react"), out, val_fraction=0.2, seed=0, negatives=True)
    assert (info.runs, info.examples, info.duplicates, info.considered) == (10, 10, 0, 13)
    assert (info.train, info.val) == (8, 2)
    # A correct run with a parse error is neither positive nor negative: REDI pushes down failures only.
    assert info.negative_runs == 2 and info.negatives + info.negatives_in_val == 2
    assert len(load_examples(out / "train.jsonl")) == 8 and len(load_examples(out / "val.jsonl")) == 2
    negatives = load_examples(out / "negatives.jsonl")
    assert {e.run_id for e in negatives} <= {runs["max_steps"].id, runs["wrong"].id}
    assert all(e.label == "negative" for e in negatives)
    saved = json.loads((out / "info.json").read_text())
    assert (
        saved["dropped"] == {"parse_error": 1, "max_steps": 1, "min_score": 1} and saved["select"]["agent"] == "react"
    )
    build_dataset(store, SelectConfig(agent="react"), out)
    assert not (out / "negatives.jsonl").exists()


def test_the_trl_export_is_prompt_completion_with_loss_on_the_trained_turns_only(
    store: TrajectoryStore, tmp_path: Path
) -> None:
    from datasets import load_dataset

    fill_store(store)
    out = tmp_path / "ds"
    build_dataset(store, SelectConfig(agent="react"), out, val_fraction=0.0)
    examples = load_examples(out / "train.jsonl")
    rows = [json.loads(line) for line in (out / "trl" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == sum(len(e.train_turns) for e in examples) > 0
    by_id = {e.id: e for e in examples}
    for row in rows:
        example = by_id[row["id"]]
        [completion] = row["completion"]
        turn = len(row["prompt"])
        assert turn in example.train_turns and completion["role"] == "assistant"
        assert [*row["prompt"], completion] == [dict(m) for m in example.messages[: turn + 1]]
    data = load_dataset("json", data_files=str(out / "trl" / "train.jsonl"), split="train")
    assert {"prompt", "completion"} <= set(data.column_names)  # what TRL's SFTTrainer reads as prompt-completion


def test_cli_prints_counts_and_dropped_reasons(store: TrajectoryStore, home: Path, tmp_path: Path) -> None:
    fill_store(store)
    out = tmp_path / "ds"
    runner = CliRunner()
    result = runner.invoke(dataset, ["--agent", "react", "--out", str(out), "--negatives"], obj=Settings(home=home),
                           catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("runs considered", "dropped: parse errors", "dropped: max_steps", "dropped: min_score=1",
                 "runs selected", "train examples", "negative examples"):  # fmt: skip
        assert text in result.output
    assert (out / "train.jsonl").is_file()
    result = runner.invoke(dataset, ["--agent", "react", "--out", str(out), "--json", "--val-fraction", "0.5"],
                           obj=Settings(home=home))  # fmt: skip
    data = json.loads(result.output)
    assert (data["runs"], data["train"], data["val"], data["negatives"]) == (
        2,
        2,
        0,
        None,
    )  # two questions: all train (MIN_VAL_QUESTIONS)
    result = runner.invoke(dataset, ["--agent", "react", "--min-score", "2", "--out", str(out)],
                           obj=Settings(home=home))  # fmt: skip
    assert isinstance(result.exception, EmptySelection) and "removed 4 by min_score=2, 1 by max_steps" in str(
        result.exception
    )


def test_run_with_a_failed_model_call_skips_that_call(store: TrajectoryStore) -> None:
    run = manual_run(store, [
        Step(run_id="", index=0, kind="model", node="think", messages_in=[user("Q?")], completion="A"),
        Step(run_id="", index=1, kind="model", node="think", messages_in=[user("Q?"), assistant("A"), user("More")],
             error=StepError("model_error", "endpoint down")),
    ])  # fmt: skip
    [example] = examples_from_runs([run])
    assert example.messages == [user("Q?"), assistant("A")]
