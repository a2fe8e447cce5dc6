"""KB search and lookup tools over a real KnowledgeStore (hashing embedder: deterministic, no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.tools.base import ToolCall, render_tools, run_tool
from agentdistill.tools.retrieval import PASSAGE_CHARS, make_lookup_tool, make_search_tool

DOCS = [
    {"id": "canberra", "title": "Canberra", "text": "Canberra is the capital city of Australia."},
    {"id": "canberra-pop", "title": "Canberra population", "text": "Canberra has a population of about 467,000."},
    {"id": "sydney", "title": "Sydney", "text": "Sydney is the largest city of Australia, " + "harbour " * 120},
]


@pytest.fixture
def store(home: Path) -> KnowledgeStore:
    kb = KnowledgeStore.create("t", home / "kb", embedder=HashingEmbedder(256))
    kb.add(DOCS, progress=False)
    return kb


def test_search_numbers_passages_with_titles_best_first(store: KnowledgeStore) -> None:
    lines = make_search_tool(store)(query="  capital city of Australia ", k=2).splitlines()
    assert lines[0] == "[1] Canberra: Canberra is the capital city of Australia."
    assert len(lines) == 2 and lines[1].startswith("[2] ")


def test_long_passages_are_clipped(store: KnowledgeStore) -> None:
    text = make_search_tool(store)(query="harbour harbour", k=1)
    assert text.startswith("[1] Sydney: Sydney is the largest city") and text.endswith("...")
    assert len(text) <= PASSAGE_CHARS + len("[1] Sydney: ")


def test_search_faults_come_back_as_text(store: KnowledgeStore) -> None:
    search = make_search_tool(store, max_k=5)
    assert search(query="   ").startswith("Error: query is empty. Example:")
    assert search(query="x", k=6) == "Error: k must be between 1 and 5, got 6."
    empty = KnowledgeStore.create("empty", store.root, embedder=HashingEmbedder(256))
    assert make_search_tool(empty)(query="anything") == "No passages match."


def test_search_through_run_tool_coerces_and_validates(store: KnowledgeStore) -> None:
    tools = {"search": make_search_tool(store)}
    assert run_tool(tools, ToolCall("search", {"query": "population of Canberra", "k": "1"})).text.startswith(
        "[1] Canberra population:"
    )
    bad = run_tool(tools, ToolCall("search", {"q": "x"}))
    assert bad.error_kind == "bad_arguments" and "missing required argument 'query'" in bad.text


def test_lookup_returns_the_whole_entry_and_suggests_titles_on_a_miss(store: KnowledgeStore) -> None:
    lookup = make_lookup_tool(store)
    assert lookup(title='"canberra"') == "Canberra: Canberra is the capital city of Australia."
    miss = lookup(title="Canbera")
    assert miss.startswith("Error: no document with title 'Canbera'") and "'Canberra'" in miss
    assert miss.endswith("Use search first and copy a title from its results.")
    assert lookup(title=" ").startswith("Error: title is empty")


def test_prompt_text_shows_signatures_and_docstrings(store: KnowledgeStore) -> None:
    text = render_tools([make_search_tool(store), make_lookup_tool(store)])
    assert text.startswith("- search(query: str, k: int = 3): Search the knowledge base; returns up to k passages")
    assert "- lookup(title: str): Return the full text" in text
