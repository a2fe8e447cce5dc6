"""What an agent answers from when a person asks it (chat, ask, demo, LangGraph Studio): a KB, catalog or records.

The question-answering agents search a named knowledge store under `<home>/kb` (the shipped sample one is built on
first use); recbot recommends from an item catalog: a directory the user imported, or the shipped Netflix titles
(embedded into `<home>/catalogs/` on first use); the materials agent looks up Materials Project records (a
directory the user imported with `agentdistill materials import`; else the live Materials Project API when
MP_API_KEY is set and the `mp` extra is installed; else the shipped sample, built into `<home>/materials/` on
first use). Benchmarks choose their stores per suite instead
(benchmarks/suites/kb_cache.py, materials_setup.py).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentdistill.config import Settings
from agentdistill.errors import AgentDistillError, StoreError
from agentdistill.memory.knowledge_bases import open_named

if TYPE_CHECKING:
    from agentdistill.memory.catalog import Catalog
    from agentdistill.memory.knowledge import KnowledgeStore
    from agentdistill.memory.materials import LiveMaterialsLookup, MaterialsStore

NO_KB = "none"
Say = Callable[[str], None]


class CatalogNeedsRecbot(AgentDistillError):
    def __init__(self, agent: str) -> None:
        super().__init__(f"--catalog is a recbot option; the {agent} agent answers from --kb.")


class MaterialsNeedsMaterialsAgent(AgentDistillError):
    def __init__(self, agent: str) -> None:
        super().__init__(
            f"--materials is an option of the materials agent (--agent materials); the {agent} agent does not read "
            "materials records: drop --materials or pass --agent materials."
        )


class NoImportedMaterials(StoreError):
    def __init__(self, directory: Path) -> None:
        super().__init__(
            f"no materials store in {directory}: import records into it with "
            f"`agentdistill materials import FILE --dir {directory}` (MP-shaped JSONL), or leave the directory out "
            "to use the shipped sample."
        )
        self.directory = directory


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def open_kb(config: Settings, name: str, say: Say = _stderr) -> KnowledgeStore | None:
    """The knowledge store `name` under `<home>/kb` ("none": no KB); "sample" is built from the package on first use."""
    if name == NO_KB:
        return None
    return open_named(name, config.kb_root, device=config.torch_device, say=say)


def open_catalog(config: Settings, agent: str, catalog_dir: Path | None, say: Say = _stderr) -> Catalog | None:
    """recbot's catalog: `catalog_dir`, else the shipped Netflix titles (embedded on first use); None for others."""
    if agent != "recbot":
        if catalog_dir is not None:
            raise CatalogNeedsRecbot(agent)
        return None
    # imported here: only recbot needs the catalog code (SQLite, FAISS) and an embedder
    from agentdistill.memory.catalog import Catalog, default_catalog
    from agentdistill.memory.embedders import make_embedder

    if catalog_dir is not None:
        return Catalog.open(catalog_dir)  # with the embedder recorded when it was built
    say(f"opening the shipped Netflix catalog in {config.home / 'catalogs'} (built on first use)...")
    return default_catalog(config.home, make_embedder(None, device=config.torch_device))


def open_materials_dir(directory: Path) -> MaterialsStore:
    """The store imported into `directory`, with the embedder recorded when it was built; NoImportedMaterials
    (naming the import command) when there is none."""
    from agentdistill.memory.materials import MaterialsStore, MaterialsStoreNotFound

    try:
        return MaterialsStore.open(directory)
    except MaterialsStoreNotFound:
        raise NoImportedMaterials(directory) from None


def open_materials(
    config: Settings, agent: str, say: Say = _stderr, materials_dir: Path | None = None
) -> MaterialsStore | LiveMaterialsLookup | None:
    """The materials agent's records: `materials_dir` when given (it wins over MP_API_KEY: the user named it), else
    the live Materials Project API when MP_API_KEY is set, else the shipped Materials Project sample (built on
    first use). MaterialsNeedsMaterialsAgent when `materials_dir` is given for another agent."""
    if agent != "materials":
        if materials_dir is not None:
            raise MaterialsNeedsMaterialsAgent(agent)
        return None
    if materials_dir is not None:
        say(f"opening the materials records in {materials_dir}...")
        return open_materials_dir(materials_dir)
    from agentdistill.memory.embedders import make_embedder
    from agentdistill.memory.materials import default_materials_store, materials_lookup_from_env

    live = materials_lookup_from_env()
    if live is not None and importlib.util.find_spec("mp_api") is None:
        say("MP_API_KEY is set but the Materials Project client is not installed (pip install 'agentdistill[mp]'):"
            " using the shipped records")  # fmt: skip
        live = None
    if live is not None:
        say("MP_API_KEY is set: the materials tools query the live Materials Project API")
        return live
    say(f"opening the shipped materials records in {config.home / 'materials'} (built on first use)...")
    return default_materials_store(config.home, make_embedder(None, device=config.torch_device))


def agent_sources(
    config: Settings,
    agent: str,
    kb_name: str,
    catalog_dir: Path | None,
    say: Say = _stderr,
    materials_dir: Path | None = None,
) -> dict[str, Any]:
    """What the agent answers from, as `build_agent` keywords: a knowledge base, (recbot) a catalog or (materials)
    a records store (`materials_dir`, imported by `agentdistill materials import`, or the default source)."""
    # a flag given to the wrong agent fails before anything is opened (a first use embeds a whole sample)
    if catalog_dir is not None and agent != "recbot":
        raise CatalogNeedsRecbot(agent)
    if materials_dir is not None and agent != "materials":
        raise MaterialsNeedsMaterialsAgent(agent)
    catalog = open_catalog(config, agent, catalog_dir, say)
    kb = None if agent in ("recbot", "materials") else open_kb(config, kb_name, say)
    return {"kb": kb, "catalog": catalog, "materials": open_materials(config, agent, say, materials_dir)}
