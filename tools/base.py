"""Typed tools: a function plus the prompt text and argument schema a model needs to call it.

A tool is a plain function `(...) -> str` whose docstring the model reads and whose signature becomes a
JSON-schema-ish `parameters` dict. `run_tool` is the one place a model's action meets a tool, and it keeps
the split every agent relies on: model faults (an unparsable action, an unknown tool, bad arguments) come
back as `Error: ...` text the model can act on, while an exception raised inside a tool is our bug and
propagates. Tools themselves return `Error: ...` strings for faults the model made (an empty query).
"""

from __future__ import annotations

import difflib
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentdistill.errors import AgentDistillError

ErrorKind = Literal["parse", "unknown_tool", "bad_arguments", "tool_error"]

_JSON_TYPES: Mapping[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_EXAMPLES: Mapping[str, Any] = {"string": "...", "integer": 1, "number": 1.0, "boolean": True}
_TRUE, _FALSE = frozenset({"true", "yes", "1"}), frozenset({"false", "no", "0"})


class ToolDefinitionError(AgentDistillError):
    """A function cannot become a tool: no docstring, or a parameter type the schema cannot express."""


@dataclass(frozen=True)
class Tool:
    """A callable the model may use. `description` is prompt text; `parameters` is a JSON-schema object."""

    name: str  # what the model writes to call it; a Python identifier so sandboxed code can call it too
    description: str  # the function's docstring, written for the model
    parameters: Mapping[str, Any] = field(hash=False)  # {"type": "object", "properties": ..., "required": ...}
    fn: Callable[..., str] = field(repr=False)  # called with keyword arguments validated against `parameters`

    @classmethod
    def from_function(cls, fn: Callable[..., str], *, name: str | None = None) -> Tool:
        """Build a tool from `fn`'s signature, type hints and docstring; raises ToolDefinitionError if it can't."""
        tool_name = name or fn.__name__
        if not tool_name.isidentifier():
            raise ToolDefinitionError(f"tool name {tool_name!r} is not a Python identifier; pass name='...'.")
        doc = inspect.getdoc(fn)
        if not doc:
            raise ToolDefinitionError(f"tool {tool_name!r} has no docstring: the docstring is what the model reads.")
        try:
            hints = typing.get_type_hints(fn)
        except NameError as exc:
            raise ToolDefinitionError(f"tool {tool_name!r}: cannot resolve a type hint ({exc}).") from exc
        properties: dict[str, Any] = {}
        required: list[str] = []
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise ToolDefinitionError(f"tool {tool_name!r}: parameter {param.name!r} must be a plain keyword.")
            if param.name not in hints:
                raise ToolDefinitionError(f"tool {tool_name!r}: parameter {param.name!r} needs a type hint.")
            schema = _schema_for(hints[param.name], f"{tool_name}.{param.name}")
            if param.default is param.empty:
                required.append(param.name)
            else:
                schema["default"] = param.default
            properties[param.name] = schema
        parameters = {"type": "object", "properties": properties, "required": required}
        return cls(name=tool_name, description=doc, parameters=parameters, fn=fn)

    def signature(self) -> str:
        """`search(query: str, k: int = 3)`: the form prompts show next to the description."""
        parts = []
        for pname, schema in self.parameters["properties"].items():
            text = f"{pname}: {_type_label(schema)}"
            if "default" in schema:
                text += f" = {schema['default']!r}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})"

    def example_args(self) -> dict[str, Any]:
        """Placeholder values for required arguments and the defaults of optional ones."""
        return {pname: _example(schema) for pname, schema in self.parameters["properties"].items()}

    def usage(self) -> str:
        """One-line call example for prompts and error messages, e.g. `search(query="...", k=3)`."""
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.example_args().items())
        return f"{self.name}({args})"

    def __call__(self, **kwargs: Any) -> str:
        return self.fn(**kwargs)


@dataclass(frozen=True)
class ToolCall:
    """What the model asked for: a tool name and keyword arguments (already parsed from its text)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ParseFault:
    """The model's action could not be parsed; `message` tells it how to write a valid one."""

    message: str
    text: str = ""  # the raw text that failed to parse, kept for the trajectory


@dataclass(frozen=True)
class ToolResult:
    """The observation for the model. `error_kind` is None on success; the trajectory stores it."""

    text: str
    error_kind: ErrorKind | None = None


def run_tool(
    by_name: Mapping[str, Tool], call: ToolCall | ParseFault, *, report_exceptions: bool = False
) -> ToolResult:
    """Run one model action. Model faults become `Error: ...` text; an exception inside a tool propagates,
    unless `report_exceptions`: agents pass it so a tool that raises is reported to the model, not the user."""
    if isinstance(call, ParseFault):
        message = call.message if call.message.startswith("Error:") else f"Error: {call.message}"
        return ToolResult(message, "parse")
    tool = by_name.get(call.name)
    if tool is None:
        valid = ", ".join(sorted(by_name)) or "(none)"
        guess = difflib.get_close_matches(call.name, list(by_name), n=1)
        hint = f" Did you mean '{guess[0]}'?" if guess else ""
        return ToolResult(f"Error: no tool {call.name!r}. Valid tools: {valid}.{hint}", "unknown_tool")
    args, problem = bind_arguments(tool, call.args)
    if problem is not None:
        return ToolResult(f"Error: bad arguments for {tool.name}: {problem}. Usage: {tool.usage()}", "bad_arguments")
    return call_tool(tool, args, report_exceptions=report_exceptions)


def call_tool(tool: Tool, args: Mapping[str, Any], *, report_exceptions: bool = False) -> ToolResult:
    """Call a tool with already-bound arguments; `report_exceptions` as in `run_tool`."""
    try:
        text = tool.fn(**args)
    except Exception as exc:
        if not report_exceptions:
            raise
        return ToolResult(f"Error: tool {tool.name!r} failed: {type(exc).__name__}: {exc}", "tool_exception")
    if not isinstance(text, str):
        raise TypeError(f"tool {tool.name!r} returned {type(text).__name__}; tools must return str")
    return ToolResult(text, "tool_error" if text.startswith("Error:") else None)


def bind_arguments(tool: Tool, args: object) -> tuple[dict[str, Any], str | None]:
    """Validate and coerce `args` against the tool's schema: (coerced args, None) or ({}, what is wrong).

    Coercion covers what models commonly write: "3" for an int, 3 for a float, "true" for a bool.
    """
    if not isinstance(args, Mapping):
        return {}, f"expected named arguments as a JSON object, got {type(args).__name__} {_short(args)}"
    properties: Mapping[str, Any] = tool.parameters["properties"]
    problems: list[str] = []
    for key in args:
        if key not in properties:
            guess = difflib.get_close_matches(str(key), list(properties), n=1)
            problems.append(f"unexpected argument {key!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
    missing = [name for name in tool.parameters["required"] if name not in args]
    problems += [f"missing required argument {name!r}" for name in missing]
    coerced: dict[str, Any] = {}
    for key, value in args.items():
        if key in properties:
            ok, converted = _coerce(value, properties[key])
            if ok:
                coerced[key] = converted
            else:
                problems.append(f"{key!r} must be {_type_label(properties[key])}, got {_short(value)}")
    return (coerced, None) if not problems else ({}, "; ".join(problems))


def render_tools(tools: Sequence[Tool]) -> str:
    """The tool list for a prompt: `name(signature): description`, continuation lines indented."""
    blocks = []
    for tool in tools:
        description = tool.description.replace("\n", "\n    ")
        blocks.append(f"- {tool.signature()}: {description}")
    return "\n".join(blocks)


def _schema_for(hint: Any, where: str) -> dict[str, Any]:
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal and params and all(isinstance(p, str | int) and not isinstance(p, bool) for p in params):
        kinds = {type(p) for p in params}
        base = _JSON_TYPES[kinds.pop()] if len(kinds) == 1 else "string"
        return {"type": base, "enum": list(params)}
    if origin is list and len(params) == 1 and params[0] in _JSON_TYPES:
        return {"type": "array", "items": {"type": _JSON_TYPES[params[0]]}}
    if origin in (typing.Union, types.UnionType) and len(params) == 2 and type(None) in params:
        inner = next(p for p in params if p is not type(None))
        return {**_schema_for(inner, where), "nullable": True}
    raise ToolDefinitionError(
        f"tool parameter {where} has type {hint!r}; use str, int, float, bool, a Literal, list[...] of those, "
        "or one of them | None."
    )


def _coerce(value: Any, schema: Mapping[str, Any]) -> tuple[bool, Any]:
    if value is None:
        return bool(schema.get("nullable")), None
    kind = schema["type"]
    if kind == "array":
        if not isinstance(value, list | tuple):
            return False, None
        items = [_coerce(item, schema["items"]) for item in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    ok, converted = _coerce_scalar(value, kind)
    if ok and "enum" in schema and converted not in schema["enum"]:
        return False, None
    return ok, converted


def _coerce_scalar(value: Any, kind: str) -> tuple[bool, Any]:
    if kind == "string":
        # A number where text is expected is harmless (search(query=1984)); containers are not.
        return (
            (True, str(value))
            if isinstance(value, str | int | float) and not isinstance(value, bool)
            else (False, None)
        )
    if kind == "boolean":
        if isinstance(value, bool):
            return True, value
        text = str(value).strip().lower() if isinstance(value, str | int) else ""
        return (True, text in _TRUE) if text in _TRUE | _FALSE else (False, None)
    if isinstance(value, bool):
        return False, None  # True is an int in Python, never what the model meant by a count
    if kind == "integer":
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        if isinstance(value, str):
            try:
                return True, int(value.strip())
            except ValueError:
                return False, None
        return False, None
    if kind == "number":
        if isinstance(value, int | float):
            return True, float(value)
        if isinstance(value, str):
            try:
                return True, float(value.strip())
            except ValueError:
                return False, None
    return False, None


def _type_label(schema: Mapping[str, Any]) -> str:
    labels = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
    if "enum" in schema:
        label = " | ".join(json.dumps(v) for v in schema["enum"])
    elif schema["type"] == "array":
        label = f"list[{labels[schema['items']['type']]}]"
    else:
        label = labels[schema["type"]]
    return f"{label} | None" if schema.get("nullable") else label


def _example(schema: Mapping[str, Any]) -> Any:
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if schema["type"] == "array":
        return [_EXAMPLES[schema["items"]["type"]]]
    return _EXAMPLES[schema["type"]]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
