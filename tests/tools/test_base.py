from __future__ import annotations

from typing import Literal

import pytest

from agentdistill.tools.base import (
    ParseFault,
    Tool,
    ToolCall,
    ToolDefinitionError,
    bind_arguments,
    render_tools,
    run_tool,
)


def search(query: str, k: int = 3) -> str:
    """Search the knowledge base for `query`; return up to k numbered passages."""
    if not query.strip():
        return "Error: query is empty. Example: search(query='population of Canberra')."
    return f"{k} passages about {query}"


def broken(text: str) -> str:
    """Always fails: stands for a bug in our own tool code."""
    raise RuntimeError("bug in the tool")


def rank(
    items: list[str], order: Literal["asc", "desc"] = "asc", weight: float | None = None, exact: bool = False
) -> str:
    """Rank items."""
    return f"{order}:{','.join(sorted(items, reverse=order == 'desc'))}:{weight}:{exact}"


TOOLS = {tool.name: tool for tool in map(Tool.from_function, (search, broken, rank))}


def test_from_function_builds_schema_and_prompt_text() -> None:
    tool = TOOLS["search"]
    assert tool.name == "search"
    assert tool.description.startswith("Search the knowledge base")
    assert tool.parameters == {
        "type": "object",
        "properties": {"query": {"type": "string"}, "k": {"type": "integer", "default": 3}},
        "required": ["query"],
    }
    assert tool.signature() == "search(query: str, k: int = 3)"
    assert tool.usage() == 'search(query="...", k=3)'
    assert tool(query="x") == "3 passages about x"


def test_from_function_handles_literal_list_and_optional() -> None:
    props = TOOLS["rank"].parameters["properties"]
    assert props["items"] == {"type": "array", "items": {"type": "string"}}
    assert props["order"] == {"type": "string", "enum": ["asc", "desc"], "default": "asc"}
    assert props["weight"] == {"type": "number", "nullable": True, "default": None}
    assert TOOLS["rank"].signature() == (
        'rank(items: list[str], order: "asc" | "desc" = \'asc\', weight: float | None = None, exact: bool = False)'
    )


def test_from_function_rejects_what_a_model_cannot_call() -> None:
    def undocumented(x: str) -> str:
        return x

    def untyped(x) -> str:  # the missing hint is the point
        """Doc."""
        return x

    def odd(x: dict) -> str:
        """Doc."""
        return ""

    with pytest.raises(ToolDefinitionError, match="no docstring"):
        Tool.from_function(undocumented)
    with pytest.raises(ToolDefinitionError, match="needs a type hint"):
        Tool.from_function(untyped)
    with pytest.raises(ToolDefinitionError, match="use str, int, float, bool"):
        Tool.from_function(odd)
    assert Tool.from_function(search, name="kb_search").name == "kb_search"


def test_unknown_tool_lists_valid_tools_and_suggests() -> None:
    result = run_tool(TOOLS, ToolCall("serch", {"query": "x"}))
    assert result.text == "Error: no tool 'serch'. Valid tools: broken, rank, search. Did you mean 'search'?"
    assert result.error_kind == "unknown_tool"


def test_bad_arguments_say_what_is_wrong_and_show_usage() -> None:
    missing = run_tool(TOOLS, ToolCall("search", {"k": 2}))
    assert missing.error_kind == "bad_arguments"
    assert missing.text == (
        "Error: bad arguments for search: missing required argument 'query'. Usage: search(query=\"...\", k=3)"
    )
    extra = run_tool(TOOLS, ToolCall("search", {"query": "x", "kk": 2}))
    assert "unexpected argument 'kk' (did you mean 'k'?)" in extra.text
    wrong = run_tool(TOOLS, ToolCall("search", {"query": "x", "k": "many"}))
    assert "'k' must be int, got 'many'" in wrong.text
    not_a_dict = run_tool(TOOLS, ToolCall("search", ["x"]))  # type: ignore[arg-type]
    assert "expected named arguments as a JSON object, got list" in not_a_dict.text


def test_simple_types_are_coerced_the_way_models_write_them() -> None:
    assert run_tool(TOOLS, ToolCall("search", {"query": 1984, "k": "2"})).text == "2 passages about 1984"
    assert bind_arguments(TOOLS["search"], {"query": "x", "k": 2.0}) == ({"query": "x", "k": 2}, None)
    args, problem = bind_arguments(
        TOOLS["rank"], {"items": ["b", "a"], "order": "desc", "weight": "0.5", "exact": "true"}
    )
    assert problem is None and args == {"items": ["b", "a"], "order": "desc", "weight": 0.5, "exact": True}
    assert run_tool(TOOLS, ToolCall("rank", {"items": ["b", "a"], "order": "desc"})).text == "desc:b,a:None:False"
    _, problem = bind_arguments(TOOLS["search"], {"query": "x", "k": True})  # a bool is never a count
    assert problem == "'k' must be int, got True"
    _, problem = bind_arguments(TOOLS["rank"], {"items": ["a"], "order": "sideways"})
    assert problem is not None and '\'order\' must be "asc" | "desc"' in problem
    _, problem = bind_arguments(TOOLS["search"], {"query": {"nested": 1}})
    assert problem is not None and "'query' must be str" in problem


def test_parse_fault_becomes_error_text() -> None:
    assert run_tool(TOOLS, ParseFault("no Action line found. Write `Action: search`.")).text == (
        "Error: no Action line found. Write `Action: search`."
    )
    assert run_tool(TOOLS, ParseFault("Error: already prefixed")).text == "Error: already prefixed"
    assert run_tool(TOOLS, ParseFault("x")).error_kind == "parse"


def test_tool_error_text_is_classified_and_tool_bugs_propagate() -> None:
    result = run_tool(TOOLS, ToolCall("search", {"query": "  "}))
    assert result.text.startswith("Error: query is empty") and result.error_kind == "tool_error"
    ok = run_tool(TOOLS, ToolCall("search", {"query": "cats"}))
    assert (ok.text, ok.error_kind) == ("3 passages about cats", None)
    with pytest.raises(RuntimeError, match="bug in the tool"):
        run_tool(TOOLS, ToolCall("broken", {"text": "x"}))


def test_render_tools_shows_signature_and_description() -> None:
    text = render_tools([TOOLS["search"], TOOLS["broken"]])
    assert text.splitlines() == [
        "- search(query: str, k: int = 3): Search the knowledge base for `query`; return up to k numbered passages.",
        "- broken(text: str): Always fails: stands for a bug in our own tool code.",
    ]
