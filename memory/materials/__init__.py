"""The materials store: Materials Project records, their validation, and a SQLite + semantic index over them.

records.py holds `MaterialRecord`, the strict JSONL loader and the packaged sample's path; checks.py the field
type checks; summary.py the one-line text per record; store.py `MaterialsStore` (build/open, queries) and the
shipped sample store; db.py the SQL; files.py the on-disk generations; queries.py reads query arguments;
live.py `LiveMaterialsLookup`, the same queries over the live Materials Project API (optional extra `mp`: mp-api
is imported on its first query, never here). Import the API from here.
"""

from agentdistill.memory.materials.checks import ORDERING_WORDS, ORDERINGS
from agentdistill.memory.materials.files import CorruptMaterialsStore, InvalidMaterialsStore, MaterialsStoreNotFound
from agentdistill.memory.materials.live import (
    LiveMaterialsLookup,
    MaterialsApiAuthError,
    MaterialsApiError,
    MaterialsApiNotInstalled,
    MaterialsApiUnavailable,
    materials_lookup_from_env,
)
from agentdistill.memory.materials.queries import (
    PROPERTIES,
    InvalidMaterialsQuery,
    UnknownElement,
    UnknownMaterialProperty,
)
from agentdistill.memory.materials.records import (
    InvalidMaterialRecord,
    MaterialRecord,
    load_records,
    make_record,
    parse_formula,
    record_from_dict,
    sample_records_path,
    stability_key,
)
from agentdistill.memory.materials.store import (
    MaterialNotFound,
    MaterialsEmbedderMismatch,
    MaterialsStore,
    default_materials_store,
)
from agentdistill.memory.materials.summary import summary

__all__ = [
    "ORDERINGS",
    "ORDERING_WORDS",
    "PROPERTIES",
    "CorruptMaterialsStore",
    "InvalidMaterialRecord",
    "InvalidMaterialsQuery",
    "InvalidMaterialsStore",
    "LiveMaterialsLookup",
    "MaterialNotFound",
    "MaterialRecord",
    "MaterialsApiAuthError",
    "MaterialsApiError",
    "MaterialsApiNotInstalled",
    "MaterialsApiUnavailable",
    "MaterialsEmbedderMismatch",
    "MaterialsStore",
    "MaterialsStoreNotFound",
    "UnknownElement",
    "UnknownMaterialProperty",
    "default_materials_store",
    "load_records",
    "make_record",
    "materials_lookup_from_env",
    "parse_formula",
    "record_from_dict",
    "sample_records_path",
    "stability_key",
    "summary",
]
