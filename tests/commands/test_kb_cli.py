"""`kb` commands through click's CliRunner, on real stores under the temporary home, with the hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentdistill.commands.kb import kb
from agentdistill.errors import AgentDistillError, InputDataError
from agentdistill.memory.knowledge_bases import open_store
from agentdistill.memory.store_files import EmbedderMismatch, StoreNotFound

DOCS = [
    {"id": "guam", "title": "Battle of Guam", "text": "The American recapture of Guam island in 1944.", "era": "ww2"},
    {
        "id": "silda",
        "title": "Battle of Silda",
        "text": "A naval battle near Silda island in 1810.",
        "era": "napoleonic",
    },
    {
        "id": "calabria",
        "title": "Battle of Calabria",
        "text": "A naval battle off Calabria in July 1940.",
        "era": "ww2",
    },
]


def invoke(*args: str, input: str | None = None) -> object:
    return CliRunner().invoke(kb, list(args), input=input, catch_exceptions=True)


@pytest.fixture
def docs_file(tmp_path: Path) -> Path:
    path = tmp_path / "battles.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    return path


def build(docs_file: Path, name: str = "wars") -> None:
    result = invoke("build", name, "--from", str(docs_file), "--embedder", "hashing:128", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 3


def test_build_search_info_list_delete(docs_file: Path, home: Path) -> None:
    build(docs_file)
    assert (home / "kb" / "wars" / "CURRENT").read_text().strip() == "gen-0001"

    result = invoke("search", "wars", "recapture of Guam", "--k", "2", "--json")
    hits = json.loads(result.output)
    assert result.exit_code == 0 and hits[0]["id"] == "guam#0" and hits[0]["metadata"]["era"] == "ww2"
    assert len(hits) == 2

    result = invoke("search", "wars", "naval battle island", "--filter", "era=ww2", "--json")
    assert {h["metadata"]["doc_id"] for h in json.loads(result.output)} == {"guam", "calabria"}

    table = invoke("search", "wars", "naval battle near Silda")
    assert table.exit_code == 0 and "silda#0" in table.output and "Battle of Silda" in table.output

    info = json.loads(invoke("info", "wars", "--json").output)
    assert (info["chunks"], info["dim"], info["embedder"], info["index_kind"]) == (3, 128, "hashing-128", "flat")
    assert "embedder" in invoke("info", "wars").output

    listed = json.loads(invoke("list", "--json").output)
    assert [row["name"] for row in listed] == ["wars"]
    assert "wars" in invoke("list").output

    assert invoke("delete", "wars", input="n\n").exit_code == 1  # declined: nothing removed
    assert (home / "kb" / "wars").is_dir()
    result = invoke("delete", "wars", "--yes")
    assert result.exit_code == 0 and not (home / "kb" / "wars").exists()
    assert json.loads(invoke("list", "--json").output) == []


def test_add_and_upsert(docs_file: Path, tmp_path: Path, home: Path) -> None:
    build(docs_file)
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "guam", "title": "Battle of Guam", "text": "Rewritten text about Guam."}) + "\n")
    result = invoke("add", "wars", "--from", str(more))
    assert isinstance(result.exception, AgentDistillError) and "upsert" in str(result.exception)
    result = invoke("add", "wars", "--from", str(more), "--upsert", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["store"]["documents"] == 3
    assert open_store("wars", home / "kb").get("guam").text == "Rewritten text about Guam."
    assert (home / "kb" / "wars" / "CURRENT").read_text().strip() == "gen-0002"


def test_errors_are_agentdistill_errors(docs_file: Path, tmp_path: Path) -> None:
    result = invoke("search", "nowhere", "query")
    assert isinstance(result.exception, StoreNotFound)
    assert "agentdistill kb build nowhere --from FILE" in str(result.exception)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(DOCS[0]) + "\n" + json.dumps({"id": 5, "title": "", "text": "x"}) + "\n")
    result = invoke("build", "bad", "--from", str(bad), "--embedder", "hashing:16")
    assert isinstance(result.exception, InputDataError) and "bad.jsonl:2: field 'title'" in str(result.exception)

    build(docs_file)
    result = invoke("search", "wars", "query", "--embedder", "hashing:64")
    assert isinstance(result.exception, EmbedderMismatch)

    result = invoke("search", "wars", "query", "--filter", "no-equals-sign")
    assert isinstance(result.exception, AgentDistillError) and "FIELD=VALUE" in str(result.exception)
    assert invoke("build", "x", "--embedder", "hashing:16").exit_code == 2  # neither --from nor --sample


def test_build_the_shipped_sample(home: Path) -> None:
    result = invoke("build", "sample", "--sample", "--embedder", "hashing:64", "--chunk-size", "60", "--overlap", "10")
    assert result.exit_code == 0, result.output
    info = json.loads(invoke("info", "sample", "--json").output)
    assert info["documents"] > 300 and info["chunks"] > info["documents"] and info["chunk_size"] == 60


def test_a_zero_chunk_size_is_refused_not_replaced(home: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agentdistill.cli import cli

    docs = tmp_path / "d.jsonl"
    docs.write_text('{"id": "a", "title": "t", "text": "hello"}\n')
    result = CliRunner().invoke(cli, ["--home", str(home), "kb", "build", "x", "--from", str(docs), "--embedder",
                                      "hashing:64", "--chunk-size", "0"])  # fmt: skip
    assert result.exit_code == 2 and "--chunk-size" in result.output and "0 is not in the range x>=1" in result.output
