"""The recommendation catalog's store: items, queries, the SQLite + semantic index, import, ranking.

store.py holds `Catalog` (build/open, hard filters, retrieval) and the shipped Netflix subset; items.py the
`CatalogItem`/`CatalogQuery`/`Vocabulary` types; db.py the SQL; files.py the on-disk generations; importer.py
CSV/JSONL import; rank.py ranking and explanations. Import the catalog API from here. The tools a model calls
over a catalog live a floor up: `agentdistill.tools.catalog.make_catalog_tools(catalog)`.
"""

from agentdistill.memory.catalog.files import CatalogNotFound, CorruptCatalog, InvalidCatalog
from agentdistill.memory.catalog.importer import import_catalog
from agentdistill.memory.catalog.items import (
    MOVIE,
    QUERY_FIELDS,
    SHOW,
    CatalogItem,
    CatalogQuery,
    FieldCheck,
    InvalidCatalogValue,
    Vocabulary,
    key,
)
from agentdistill.memory.catalog.rank import Ranked, explain, rank
from agentdistill.memory.catalog.store import (
    Catalog,
    CatalogEmbedderMismatch,
    CatalogItemNotFound,
    default_catalog,
    load_items,
    packaged_catalog_path,
)

__all__ = [
    "MOVIE",
    "QUERY_FIELDS",
    "SHOW",
    "Catalog",
    "CatalogEmbedderMismatch",
    "CatalogItem",
    "CatalogItemNotFound",
    "CatalogNotFound",
    "CatalogQuery",
    "CorruptCatalog",
    "FieldCheck",
    "InvalidCatalog",
    "InvalidCatalogValue",
    "Ranked",
    "Vocabulary",
    "default_catalog",
    "explain",
    "import_catalog",
    "key",
    "load_items",
    "packaged_catalog_path",
    "rank",
]
