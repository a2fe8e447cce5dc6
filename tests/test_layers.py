"""The package is built in floors: a module imports only its own floor or lower ones, with no circles.

core (errors, paths, config, models, trajectory schema) -> memory -> tools -> agents -> benchmarks -> distill ->
the `distill run` workflow -> click commands and the web UI -> cli. The LangGraph Studio entry and
agentdistill.testing (fake servers and small fixtures for tests) sit on the cli floor: they may use any floor,
and no product module imports them. Imports inside functions count too: a lazy import still makes the lower
floor depend on the higher one. The perf scripts (benchmarks/perf/) live outside the installed package; they
may import anything, and nothing imports them.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "agentdistill": "agentdistill",
    "memory": "agentdistill.memory",
    "tools": "agentdistill.tools",
    "agents": "agentdistill.agents",
    "benchmarks": "agentdistill.benchmarks",
    "distill": "agentdistill.distill",
}
PERF = ROOT / "benchmarks" / "perf"
FLOORS = ("core", "memory", "tools", "agents", "benchmarks", "distill", "workflow", "commands", "cli")
MODULE_LINES = 400
GRAPH_LINES = 200
GRAPH_REASON = "# over 200 lines:"


def floor_of(module: str) -> str:
    """The floor a module lives on, from its dotted name."""
    parts = module.split(".")
    sub = parts[1] if len(parts) > 1 else ""
    if sub in ("cli", "studio", "testing"):
        return "cli"
    if sub in ("commands", "web"):  # the web UI (agentdistill.web) is another front end, beside the click commands
        return "commands"
    if sub == "distill":
        return "workflow" if len(parts) > 2 and parts[2] == "workflow" else "distill"
    if sub in ("memory", "tools", "agents", "benchmarks"):
        return sub
    return "core"


def source_modules() -> dict[str, Path]:
    """Every installed module of the package, by dotted name (the perf scripts are not installed)."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts or path.is_relative_to(PERF):
                continue
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every agentdistill name a module imports, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - (path.name != "__init__.py") - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def import_edges() -> dict[str, set[str]]:
    """module -> the package modules it imports (a `from pkg import name` counts as pkg.name when it is a module)."""
    modules = source_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target in imported_names(name, path):
            if not target.startswith("agentdistill"):
                continue
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def test_no_module_imports_a_higher_floor() -> None:
    upward = [
        f"{a} ({floor_of(a)}) imports {b} ({floor_of(b)})"
        for a, targets in import_edges().items()
        for b in targets
        if FLOORS.index(floor_of(b)) > FLOORS.index(floor_of(a))
    ]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_circles() -> None:
    cycles = find_cycles(import_edges())
    assert not cycles, "modules that import each other (directly or round a circle):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_find_cycles_sees_a_circle_and_a_chain() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_floor_of_the_known_places() -> None:
    assert floor_of("agentdistill.models.base") == "core"
    assert floor_of("agentdistill.memory.catalog.store") == "memory"
    assert floor_of("agentdistill.distill.workflow.plan") == "workflow"
    assert floor_of("agentdistill.commands.bench_run") == "commands"
    assert floor_of("agentdistill.studio") == "cli"
    assert floor_of("agentdistill.testing.catalogs") == "cli"


def test_perf_scripts_are_outside_the_package_and_nothing_imports_them() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "agentdistill.benchmarks.perf" not in packages
    assert not (PERF / "__init__.py").exists(), "benchmarks/perf/ holds scripts, not a package"
    importers = [
        f"{path.relative_to(ROOT)} imports {target}"
        for tree in ("agentdistill", "memory", "tools", "agents", "benchmarks", "distill", "tests")
        for path in (ROOT / tree).rglob("*.py")
        if not path.is_relative_to(PERF)
        for target in imported_names("x.y", path)
        if "perf" in target.split(".")
    ]
    assert not importers, "\n".join(importers)


def test_modules_stay_small() -> None:
    too_long = []
    for name, path in source_modules().items():
        lines = path.read_text().splitlines()
        if len(lines) > MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(lines)} lines (at most {MODULE_LINES})")
        graph_file = floor_of(name) == "agents" and any("StateGraph(" in line for line in lines)
        if graph_file and len(lines) > GRAPH_LINES and not any(line.startswith(GRAPH_REASON) for line in lines[:30]):
            too_long.append(f"{path.relative_to(ROOT)}: graph file of {len(lines)} lines, no '{GRAPH_REASON} why'")
    assert not too_long, "\n".join(too_long)
