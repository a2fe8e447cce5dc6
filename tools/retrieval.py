"""Knowledge-base tools: `search` (passages by meaning) and `lookup` (one entry by its title).

Their docstrings are what the model reads, so they are short and show the call. Model faults (an empty
query, a k out of range, a title that does not exist) come back as `Error: ...` text with a hint; a
broken index raises, because that is our bug and not something the model can fix.
"""

from __future__ import annotations

from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.knowledge_types import DocumentNotFound
from agentdistill.tools.base import Tool

PASSAGE_CHARS = 600  # characters of each passage shown; small models drown in long observations


def make_search_tool(store: KnowledgeStore, max_k: int = 10) -> Tool:
    """A `search(query, k=3)` tool over `store`: numbered passages with their titles, best first."""

    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base; returns up to k passages as "[n] Title: text", best first."""
        if not query.strip():
            return 'Error: query is empty. Example: {"query": "population of Canberra"}'
        if not 1 <= k <= max_k:
            return f"Error: k must be between 1 and {max_k}, got {k}."
        hits = store.search(query.strip(), k=k)
        return "\n".join(f"[{i}] {h.title}: {_clip(h.text)}" for i, h in enumerate(hits, 1)) or "No passages match."

    return Tool.from_function(search)


def make_lookup_tool(store: KnowledgeStore) -> Tool:
    """A `lookup(title)` tool: the full text of the entry with that title, for when a passage was cut."""

    def lookup(title: str) -> str:
        """Return the full text of the knowledge-base entry with this exact title (titles appear in search results)."""
        wanted = title.strip().strip("\"'")
        if not wanted:
            return 'Error: title is empty. Example: {"title": "Canberra"}'
        try:
            doc = store.get_by_title(wanted)
        except DocumentNotFound as exc:  # the message suggests close titles, which the model can copy
            return f"Error: {exc} Use search first and copy a title from its results."
        return f"{doc.title}: {doc.text}"

    return Tool.from_function(lookup)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PASSAGE_CHARS else text[: PASSAGE_CHARS - 3].rstrip() + "..."
