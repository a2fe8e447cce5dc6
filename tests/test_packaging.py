"""Every folder with Python code must be an installed package, or `pip install` silently drops it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"agents", "tools", "memory", "distill", "benchmarks"}
# Perf scripts run as `python benchmarks/perf/bench_x.py` and are deliberately not installed: they may
# import anything (torch, llama-cpp, each other) and nothing in the package imports them.
NOT_INSTALLED = ROOT / "benchmarks" / "perf"


def _package_name(folder: Path) -> str:
    parts = folder.relative_to(ROOT).parts
    if parts[0] in MAPPED:
        return ".".join(("agentdistill", *parts))
    return ".".join(parts)


def test_every_code_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    code_dirs = {
        p.parent
        for top in ("agentdistill", *MAPPED)
        for p in (ROOT / top).rglob("*.py")
        if "__pycache__" not in p.parts and not p.is_relative_to(NOT_INSTALLED)
    }
    missing = sorted(_package_name(d) for d in code_dirs if _package_name(d) not in listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
    for name in listed:
        assert (ROOT / config["tool"]["setuptools"]["package-dir"].get(name, name.replace(".", "/"))).is_dir() or name


def test_mapped_folders_import_under_the_package_name() -> None:
    import agentdistill.agents
    import agentdistill.memory.trajectories

    assert Path(agentdistill.memory.trajectories.__file__).parent.name == "memory"
    assert agentdistill.agents.__name__ == "agentdistill.agents"
