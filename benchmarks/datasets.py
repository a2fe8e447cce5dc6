"""Loaders: benchmark JSONL files (the shapes of shared/data, see its SOURCES.md) -> validated `Item`s.

Every line is checked before anything is returned, so a bad line stops a run before its first model call,
and the error names `file:line` and the field to fix. Blank lines are skipped; anything else that is not a
JSON object with the loader's fields is an error. Retrieval loaders turn each item's paragraphs into
`Document`s whose id is derived from title and text, so the same paragraph in two items is one passage
when a suite pools them into its knowledge store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agentdistill.benchmarks.items import Item
from agentdistill.benchmarks.make_sample_kb import slug
from agentdistill.benchmarks.metrics import INSUFFICIENT
from agentdistill.errors import AgentDistillError, InputDataError
from agentdistill.jsonl import json_objects
from agentdistill.memory.documents import Document

# Fields a user JSONL may rename with a field mapping (ours -> theirs).
MAPPABLE = ("id", "question", "answer", "answers", "answerable")
_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?")
_META_SCALARS = (str, int, float, bool, type(None))


class UnknownLoader(AgentDistillError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown dataset loader {name!r}: use one of {', '.join(sorted(LOADERS))}")


class BadFieldMapping(AgentDistillError):
    def __init__(self, mapping: Mapping[str, str]) -> None:
        unknown = sorted(set(mapping) - set(MAPPABLE))
        super().__init__(
            f"field mapping names {', '.join(map(repr, unknown))}, which are not our fields: map one of "
            f"{', '.join(MAPPABLE)} to the name your file uses, e.g. question=prompt answer=target"
        )


class _Line:
    """One parsed line: field access through the mapping, and errors that name file:line and the file's field."""

    def __init__(self, path: Path, number: int, row: Mapping[str, Any], fields: Mapping[str, str]) -> None:
        self.path, self.number, self.row, self.fields = path, number, row, fields

    def name(self, ours: str) -> str:
        return self.fields.get(ours, ours)

    def has(self, ours: str) -> bool:
        return self.row.get(self.name(ours)) is not None

    def get(self, ours: str, default: Any = None) -> Any:
        return self.row.get(self.name(ours), default)

    def fail(self, problem: str, ours: str | None = None) -> InputDataError:
        return InputDataError(self.path, self.number, problem, field=self.name(ours) if ours else None)

    def text(self, ours: str) -> str:
        """A required non-empty string (an integer id is accepted and turned into a string)."""
        value = self.get(ours)
        if value is None:
            mapped = f" (mapped from {ours!r})" if self.name(ours) != ours else ""
            raise self.fail(f"is missing{mapped}", ours)
        if ours == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(f"must be a string, got {type(value).__name__}", ours)
        if not value.strip():
            raise self.fail("is empty", ours)
        return value.strip()

    def item_id(self, prefix: str) -> str:
        """The line's id, or `<prefix>-<line>` for files without ids (Bamboogle, many user files)."""
        return self.text("id") if self.has("id") else f"{prefix}-{self.number}"

    def answers(self, *extra_list_fields: str) -> tuple[str, ...]:
        """`answer` (string, number or list) first, then `answers` (and extra alias lists), deduplicated."""
        found: list[str] = []
        for ours in ("answer", "answers", *extra_list_fields):
            value = self.get(ours)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, int | float) and not isinstance(v, bool):
                    v = str(v)
                if not isinstance(v, str) or not v.strip():
                    raise self.fail(f"must be a non-empty string or a list of them, got {v!r}", ours)
                if v.strip() not in found:
                    found.append(v.strip())
        if not found:
            raise self.fail("is missing (every item needs `answer` or a non-empty `answers` list)", "answer")
        return tuple(found)

    def number_answer(self) -> tuple[str, ...]:
        """GSM8K/SVAMP gold: a plain number (commas allowed), so a wrong file is caught here, not at scoring."""
        answers = self.answers()
        if not _NUMERIC.fullmatch(answers[0].replace(",", "")):
            raise self.fail(f"must be a number like 18 or -2.5, got {answers[0]!r}", "answer")
        return (answers[0].replace(",", ""), *answers[1:])

    def flag(self, ours: str, default: bool) -> bool:
        value = self.get(ours)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"must be true or false, got {value!r}", ours)
        return value

    def meta(self, *keys: str) -> dict[str, Any]:
        return {k: self.row[k] for k in keys if self.row.get(k) is not None}


def passage(title: str, text: str, source: str) -> Document:
    """A context paragraph as a KB document; the id hashes title and text, so equal paragraphs share it."""
    digest = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:10]
    return Document(id=f"{slug(title)[:48]}-{digest}", title=title, text=text, metadata={"source": source})


def join_sentences(sentences: Sequence[str]) -> str:
    """HotpotQA sentences carry their leading space, 2Wiki's do not: add one only where none is."""
    out = ""
    for sentence in sentences:
        if out and not out[-1].isspace() and sentence[:1] and not sentence[0].isspace():
            out += " "
        out += sentence
    return out.strip()


def _titled_contexts(line: _Line, source: str) -> tuple[Document, ...]:
    """`context: [[title, [sentence, ...]], ...]` (HotpotQA, 2Wiki); paragraphs with no text are left out."""
    context = line.get("context")
    if not isinstance(context, list):
        raise line.fail("must be a list of [title, [sentences]] pairs", "context")
    docs = []
    for n, pair in enumerate(context):
        ok = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], list)
        if not ok or not all(isinstance(s, str) for s in pair[1]):
            raise line.fail(f"entry {n} must be [title, [sentence, ...]], got {json.dumps(pair)[:80]}", "context")
        text = join_sentences(pair[1])
        if text and pair[0].strip():
            docs.append(passage(pair[0].strip(), text, source))
    return tuple(docs)


def _hotpotqa(line: _Line) -> Item:
    return Item(
        id=line.text("id"),
        question=line.text("question"),
        answers=line.answers(),
        contexts=_titled_contexts(line, "hotpotqa"),
        meta=line.meta("type", "level", "supporting_titles"),
    )


def _2wiki(line: _Line) -> Item:
    return Item(
        id=line.text("id"),
        question=line.text("question"),
        answers=line.answers(),
        contexts=_titled_contexts(line, "2wikimultihopqa"),
        meta=line.meta("type", "supporting_titles"),
    )


def _musique(line: _Line) -> Item:
    """Unanswerable items are scored right only on "insufficient information", so that is their gold."""
    paragraphs = line.get("paragraphs")
    if not isinstance(paragraphs, list):
        raise line.fail("must be a list of {idx, title, paragraph_text, is_supporting}", "paragraphs")
    docs, supporting = [], []
    for n, para in enumerate(paragraphs):
        if not (isinstance(para, dict) and isinstance(para.get("title"), str)):
            raise line.fail(f"entry {n} must be an object with a string title", "paragraphs")
        if not isinstance(para.get("paragraph_text"), str):
            raise line.fail(f"entry {n} has no string paragraph_text", "paragraphs")
        if para["paragraph_text"].strip():
            docs.append(passage(para["title"].strip(), para["paragraph_text"].strip(), "musique"))
        if para.get("is_supporting"):
            supporting.append(para["title"].strip())
    answerable = line.flag("answerable", True)
    answers = line.answers()
    return Item(
        id=line.text("id"),
        question=line.text("question"),
        answers=answers if answerable else (INSUFFICIENT,),
        answerable=answerable,
        contexts=tuple(docs),
        meta={**line.meta("hops", "question_decomposition"), "supporting_titles": supporting}
        | ({} if answerable else {"answer_if_answerable": answers[0]}),
    )


def _bamboogle(line: _Line) -> Item:
    """Bamboogle copies differ: the original sheet has Question/Answer, FlashRAG's has golden_answers."""
    if not line.has("question") and "Question" in line.row:
        line.fields = {"question": "Question", "answer": "Answer", **line.fields}
    return Item(id=line.item_id("bamboogle"), question=line.text("question"), answers=line.answers("golden_answers"))


def _gsm8k(line: _Line) -> Item:
    return Item(id=line.text("id"), question=line.text("question"), answers=line.number_answer())


def _svamp(line: _Line) -> Item:
    return Item(
        id=line.text("id"), question=line.text("question"), answers=line.number_answer(), meta=line.meta("type")
    )


def _math500(line: _Line) -> Item:
    return Item(
        id=line.text("id"), question=line.text("question"), answers=line.answers(), meta=line.meta("subject", "level")
    )


def _user_jsonl(line: _Line) -> Item:
    """Any JSONL with question and answer(s); short extra fields (scalars, lists of them) are kept as meta."""
    ours = {line.name(f) for f in MAPPABLE}
    meta = {
        k: v
        for k, v in line.row.items()
        if k not in ours
        and (isinstance(v, _META_SCALARS) or (isinstance(v, list) and all(isinstance(x, _META_SCALARS) for x in v)))
    }
    answerable = line.flag("answerable", True)
    return Item(
        id=line.item_id(line.path.stem),
        question=line.text("question"),
        answers=line.answers() if answerable else (INSUFFICIENT,),
        answerable=answerable,
        meta=meta,
    )


def _reader(parse: Callable[[_Line], Item]) -> Callable[..., list[Item]]:
    def load(path: Path, *, limit: int | None = None, fields: Mapping[str, str] | None = None) -> list[Item]:
        path = Path(path)
        fields = dict(fields or {})
        if set(fields) - set(MAPPABLE):
            raise BadFieldMapping(fields)
        items: list[Item] = []
        first_line: dict[str, int] = {}
        for number, row in json_objects(path):
            item = parse(_Line(path, number, row, fields))
            if item.id in first_line:
                problem = f"duplicate id {item.id!r} (first at line {first_line[item.id]})"
                raise InputDataError(path, number, problem, field=fields.get("id", "id"))
            first_line[item.id] = number
            items.append(item)
        return items if limit is None else items[: max(limit, 0)]

    load.__doc__ = parse.__doc__
    return load


LOADERS: Mapping[str, Callable[..., list[Item]]] = MappingProxyType(
    {
        "hotpotqa": _reader(_hotpotqa),
        "2wiki": _reader(_2wiki),
        "musique": _reader(_musique),
        "bamboogle": _reader(_bamboogle),
        "gsm8k": _reader(_gsm8k),
        "svamp": _reader(_svamp),
        "math500": _reader(_math500),
        "jsonl": _reader(_user_jsonl),
    }
)


def load_dataset(
    loader: str, path: Path, *, limit: int | None = None, fields: Mapping[str, str] | None = None
) -> list[Item]:
    """All lines of `path` validated, then the first `limit` items in file order.

    The whole file is checked even with a limit: a file is either usable or names its first bad line.
    `fields` maps our field names to the file's (`{"question": "prompt", "answer": "target"}`).
    """
    if loader not in LOADERS:
        raise UnknownLoader(loader)
    items = LOADERS[loader](Path(path), limit=limit, fields=fields)
    if not items and limit != 0:  # a run over nothing would "succeed" with accuracy 0/0
        raise InputDataError(path, 1, "the file holds no items: expected one JSON object per line")
    return items
