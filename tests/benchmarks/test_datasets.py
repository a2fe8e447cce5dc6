"""Loaders on the real shared data files (skipped when absent) and on small hand-written bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.benchmarks.datasets import (
    LOADERS,
    BadFieldMapping,
    UnknownLoader,
    join_sentences,
    load_dataset,
    passage,
)
from agentdistill.benchmarks.metrics import INSUFFICIENT
from agentdistill.errors import InputDataError

# (loader, file under shared/data, item count from SOURCES.md)
REAL_FILES = [
    ("hotpotqa", "hotpotqa/dev_shared.jsonl", 388),
    ("jsonl", "hotpotqa/dev_qa_only_shared.jsonl", 7205),
    ("2wiki", "2wikimultihopqa/dev_shared.jsonl", 120),
    ("musique", "musique/dev_shared.jsonl", 120),
    ("gsm8k", "math/gsm8k_train.jsonl", 7473),
    ("gsm8k", "math/gsm8k_test_shared.jsonl", 800),
    ("svamp", "math/svamp_shared.jsonl", 600),
    ("math500", "math/math500_shared.jsonl", 300),
]


def write_lines(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("loader", "file", "count"), REAL_FILES)
def test_real_files_load_with_the_counts_of_sources_md(shared_data: Path, loader: str, file: str, count: int) -> None:
    items = load_dataset(loader, shared_data / file)
    assert len(items) == count
    assert len({i.id for i in items}) == count
    assert all(i.question and i.answers and all(a.strip() for a in i.answers) for i in items)
    first = json.loads((shared_data / file).open(encoding="utf-8").readline())
    assert (items[0].id, items[0].question, items[0].answer) == (first["id"], first["question"], first["answer"])


def test_hotpotqa_contexts_become_one_document_per_paragraph(shared_data: Path) -> None:
    items = load_dataset("hotpotqa", shared_data / "hotpotqa/dev_shared.jsonl", limit=5)
    first = items[0]
    raw = json.loads((shared_data / "hotpotqa/dev_shared.jsonl").open(encoding="utf-8").readline())
    assert [d.title for d in first.contexts] == [title for title, _ in raw["context"]]
    assert first.contexts[0].text == "".join(raw["context"][0][1]).strip()  # HotpotQA sentences carry their spaces
    assert first.meta["type"] == "comparison" and first.meta["supporting_titles"] == raw["supporting_titles"]
    again = load_dataset("hotpotqa", shared_data / "hotpotqa/dev_shared.jsonl", limit=1)[0]
    assert [d.id for d in again.contexts] == [d.id for d in first.contexts]  # stable ids: the KB cache relies on them
    assert all("#" not in d.id for d in first.contexts)


def test_2wiki_sentences_are_joined_with_spaces_and_musique_keeps_its_metadata(shared_data: Path) -> None:
    [wiki] = load_dataset("2wiki", shared_data / "2wikimultihopqa/dev_shared.jsonl", limit=1)
    assert wiki.contexts[0].text.startswith("Maheen Khan is a Pakistani") and ".She" not in wiki.contexts[0].text
    assert wiki.meta["type"] == "compositional"
    [mus] = load_dataset("musique", shared_data / "musique/dev_shared.jsonl", limit=1)
    assert mus.answerable and mus.meta["hops"] == 2 and len(mus.meta["question_decomposition"]) == 2
    assert {d.title for d in mus.contexts} >= set(mus.meta["supporting_titles"])
    [math] = load_dataset("math500", shared_data / "math/math500_shared.jsonl", limit=1)
    assert math.meta == {"subject": "Precalculus", "level": 2} and "\\frac{\\pi}{2}" in math.answer


def test_join_sentences_and_passage_ids() -> None:
    assert join_sentences(["One.", " Two.", "Three."]) == "One. Two. Three."
    a, b = passage("Battle of Guam (1944)", "text", "x"), passage("Battle of Guam (1944)", "text", "y")
    assert a.id == b.id and a.id.startswith("battle-of-guam-1944-")
    assert passage("Battle of Guam (1944)", "other text", "x").id != a.id


def test_unanswerable_musique_item_expects_insufficient_information(tmp_path: Path) -> None:
    para = {"idx": 0, "title": "Green", "paragraph_text": "Green is an album.", "is_supporting": True}
    row = {"id": "m1", "question": "Who?", "answer": "Steve", "answers": ["Steve"], "answerable": False}
    [item] = load_dataset("musique", write_lines(tmp_path / "m.jsonl", [{**row, "paragraphs": [para]}]))
    assert not item.answerable and item.answers == (INSUFFICIENT,) and item.meta["answer_if_answerable"] == "Steve"
    assert [d.title for d in item.contexts] == ["Green"]


@pytest.mark.parametrize(
    ("loader", "rows", "line", "field", "problem"),
    [
        ("gsm8k", [{"id": "a", "question": "q", "answer": "1"}, "{not json"], 2, None, "not valid JSON"),
        ("gsm8k", [{"id": "a", "question": "q", "answer": "1"}, {"id": "b", "answer": "2"}], 2, "question", "missing"),
        ("gsm8k", [{"id": "a", "question": "q", "answer": "eighteen"}], 1, "answer", "must be a number"),
        ("svamp", [{"id": "a", "question": "q", "answer": "1"}, {"id": "a", "question": "r", "answer": "2"}], 2,
         "id", "duplicate id 'a' (first at line 1)"),
        ("math500", [{"id": "a", "question": "q", "answer": ""}], 1, "answer", "non-empty"),
        ("math500", [[1, 2]], 1, None, "expected a JSON object"),
        ("hotpotqa", [{"id": "h", "question": "q", "answer": "a", "context": [["T", "not a list"]]}], 1, "context",
         "entry 0"),
        ("musique", [{"id": "m", "question": "q", "answer": "a", "paragraphs": [{"title": "T"}]}], 1, "paragraphs",
         "paragraph_text"),
        ("jsonl", [{"question": "q", "answer": "a", "answerable": "yes"}], 1, "answerable", "true or false"),
        ("jsonl", [{"question": "q", "answer": "a"}, {"question": "q2"}], 2, "answer", "missing"),
    ],
)  # fmt: skip
def test_a_bad_line_names_file_line_and_field(
    tmp_path: Path, loader: str, rows: list[object], line: int, field: str | None, problem: str
) -> None:
    path = write_lines(tmp_path / "data.jsonl", rows)
    with pytest.raises(InputDataError) as err:
        load_dataset(loader, path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    assert problem in str(err.value) and str(err.value).startswith(f"{path}:{line}")


def test_blank_lines_are_skipped_limit_keeps_file_order_and_every_line_is_still_checked(tmp_path: Path) -> None:
    rows = [{"id": f"q{n}", "question": f"{n} + 1?", "answer": str(n + 1)} for n in range(5)]
    path = write_lines(tmp_path / "d.jsonl", [rows[0], "", "   ", *rows[1:]])
    assert [i.id for i in load_dataset("gsm8k", path, limit=3)] == ["q0", "q1", "q2"]
    assert len(load_dataset("gsm8k", path)) == 5 and load_dataset("gsm8k", path, limit=0) == []
    write_lines(path, [*rows, {"id": "bad", "question": "q"}])
    with pytest.raises(InputDataError, match=":6: field 'answer'"):  # line 6 is past the limit, still checked
        load_dataset("gsm8k", path, limit=2)


def test_user_jsonl_with_a_field_mapping(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "mine.jsonl",
        [
            {"prompt": "Capital of France?", "target": "Paris", "topic": "geo", "ctx": {"big": "dict"}},
            {"prompt": "2+2?", "target": 4, "key": "k2", "aliases": ["four"]},
        ],
    )
    items = load_dataset(
        "jsonl", path, fields={"question": "prompt", "answer": "target", "id": "key", "answers": "aliases"}
    )
    assert [i.id for i in items] == ["mine-1", "k2"]  # no id: <file stem>-<line>
    assert items[0].question == "Capital of France?" and items[0].answers == ("Paris",)
    assert items[0].meta == {"topic": "geo"}  # scalars kept, nested objects dropped
    assert items[1].answers == ("4", "four")
    with pytest.raises(InputDataError) as err:
        load_dataset("jsonl", path, fields={"question": "query"})
    assert err.value.field == "query" and "mapped from 'question'" in str(err.value)
    with pytest.raises(BadFieldMapping, match="'questoin'"):
        load_dataset("jsonl", path, fields={"questoin": "prompt"})


def test_user_jsonl_accepts_answers_lists_and_the_sample_questions(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "u.jsonl", [{"id": 7, "question": "q", "answers": ["NYC", "New York City"]}])
    [item] = load_dataset("jsonl", path)
    assert (item.id, item.answers) == ("7", ("NYC", "New York City"))


def test_bamboogle_reads_the_original_and_flashrag_shapes(tmp_path: Path) -> None:
    original = write_lines(tmp_path / "b1.jsonl", [{"Question": "Who?", "Answer": "Ada Lovelace"}])
    flashrag = write_lines(tmp_path / "b2.jsonl", [{"id": "test_0", "question": "Who?", "golden_answers": ["Ada"]}])
    [a] = load_dataset("bamboogle", original)
    [b] = load_dataset("bamboogle", flashrag)
    assert (a.id, a.question, a.answers, a.contexts) == ("bamboogle-1", "Who?", ("Ada Lovelace",), ())
    assert (b.id, b.answers) == ("test_0", ("Ada",))


def test_unknown_loader_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownLoader, match="hotpotqa") as err:
        load_dataset("hotpot", tmp_path / "x.jsonl")
    assert all(name in str(err.value) for name in LOADERS)
