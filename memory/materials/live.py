"""Live Materials Project lookups: the materials tools' `MaterialsLookup` methods answered by the MP API.

`LiveMaterialsLookup` queries `materials/summary` (and `materials/elasticity` for one record's elastic tensor)
through the official client, `mp_api.client.MPRester`, an optional extra (`pip install 'agentdistill[mp]'`)
that is imported only when the first query runs, so importing agentdistill never needs it. Records come back as
the same `MaterialRecord`s the local store holds, in the same orders. Every answer is cached in memory, so an
agent that repeats a search does not refetch it. `materials_lookup_from_env` builds one from MP_API_KEY.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentdistill.errors import AgentDistillError
from agentdistill.memory.materials.checks import check_field
from agentdistill.memory.materials.db import scalar
from agentdistill.memory.materials.queries import (
    ORDERING,
    PROPERTIES,
    InvalidMaterialsQuery,
    check_property_arguments,
    element_symbols,
    property_column,
)
from agentdistill.memory.materials.records import (
    InvalidMaterialRecord,
    MaterialRecord,
    id_key,
    parse_formula,
    record_from_dict,
    stability_key,
)
from agentdistill.memory.materials.store import MaterialNotFound

KEY_FIX = "set MP_API_KEY to your key from materialsproject.org/api"
# The summary fields a record keeps (all are SummaryDoc fields: the client rejects any other name before sending).
SUMMARY_FIELDS = (
    "material_id",
    "formula_pretty",
    "ordering",
    "total_magnetization",
    "total_magnetization_normalized_formula_units",
    "formation_energy_per_atom",
    "energy_above_hull",
    "is_stable",
    "band_gap",
    "is_metal",
    "is_magnetic",
    "bulk_modulus",
    "shear_modulus",
    "universal_anisotropy",
    "homogeneous_poisson",
    "symmetry",
    "density",
    "volume",
    "nsites",
    "theoretical",
)
# store column -> (summary.search range argument, server-side sort field). decomposition_enthalpy is not a
# summary field, so it cannot be searched live.
_RANGES: dict[str, tuple[str, str]] = {
    "nelements": ("num_elements", "nelements"),
    "nsites": ("num_sites", "nsites"),
    "energy_above_hull": ("energy_above_hull", "energy_above_hull"),
    "formation_energy_per_atom": ("formation_energy", "formation_energy_per_atom"),
    "band_gap": ("band_gap", "band_gap"),
    "magnetization": ("total_magnetization_normalized_formula_units", "total_magnetization_normalized_formula_units"),
    "total_magnetization": ("total_magnetization", "total_magnetization"),
    "bulk_modulus_vrh": ("k_vrh", "bulk_modulus.vrh"),
    "homogeneous_poisson": ("poisson_ratio", "homogeneous_poisson"),
    "universal_anisotropy": ("elastic_anisotropy", "universal_anisotropy"),
    "density": ("density", "density"),
    "volume": ("volume", "volume"),
}
_INTEGER_COLUMNS = ("nelements", "nsites")
_UNBOUNDED = 1e30  # a range with no bounds still needs one, so the server skips records lacking the value
_ID = re.compile(r"^[A-Za-z]+-\d+$")  # mp-149, mvc-123: anything else cannot be an MP id, so is not sent
_MAX_CACHED = 1024  # answers kept; the oldest go first


class MaterialsApiError(AgentDistillError):
    """The Materials Project API could not answer; the message names the problem and the fix."""


class MaterialsApiNotInstalled(MaterialsApiError):
    def __init__(self) -> None:
        super().__init__(
            "live Materials Project lookups need the official client (mp-api): pip install 'agentdistill[mp]'"
        )


class MaterialsApiAuthError(MaterialsApiError):
    """The API refused the key (HTTP 401/403) or the client rejected its form."""


class MaterialsApiUnavailable(MaterialsApiError):
    """The endpoint could not be reached, or does not answer like the Materials Project API."""


class LiveMaterialsLookup:
    """The `MaterialsLookup` methods over the live Materials Project API; safe to share between threads.

    `endpoint` replaces https://api.materialsproject.org/ (a mirror, or a test server); `client` is a ready
    MPRester-like object (then nothing is imported or constructed). Searches return at most `max_results`
    records (the API would page through thousands for "O"); `get` adds the elastic tensor where MP has one.
    """

    def __init__(
        self, api_key: str, *, endpoint: str | None = None, client: Any = None, max_results: int = 100
    ) -> None:
        if client is None and not _mp_api_installed():
            raise MaterialsApiNotInstalled()
        if client is None and not api_key.strip():
            raise MaterialsApiAuthError(f"no Materials Project API key given: {KEY_FIX}")
        self.endpoint = endpoint
        self.max_results = max_results
        self._api_key, self._client = api_key.strip(), client
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._routes: dict[str, Any] = {}  # "summary" -> client.materials.summary, ready to query
        self._seen: dict[str, MaterialRecord] = {}  # every record any answer held, by id: suggestions come from it

    def by_formula(self, formula: str) -> list[MaterialRecord]:
        """Records written as `formula` or with its reduced formula ("Fe4O6" finds Fe2O3), most stable first.
        Text that is no formula of real elements (MP's wildcards "ABO3", "Si*" included) finds nothing."""
        text = formula.strip()
        try:
            reduced = parse_formula(text).reduced_formula
        except ValueError:
            return []
        records = self._search(("formula", reduced), formula=reduced, _sort_fields="energy_above_hull")
        return sorted((r for r in records if r.formula == text or r.reduced_formula == reduced), key=stability_key)

    def by_elements(
        self, elements: str | Sequence[str], *, exact: bool = False, k: int | None = None
    ) -> list[MaterialRecord]:
        """Records containing all of `elements` (exact: of exactly that chemical system); fewest elements first,
        then by reduced formula, most stable first. InvalidMaterialsQuery for a name that is no element."""
        symbols = element_symbols(elements)
        query = {"chemsys": "-".join(symbols)} if exact else {"elements": symbols}
        records = self._search(("elements", tuple(symbols), exact), **query, _sort_fields="nelements,energy_above_hull")
        ordered = sorted(records, key=lambda r: (r.nelements, r.reduced_formula, stability_key(r)))
        return ordered if k is None else ordered[: max(k, 0)]

    def by_property(
        self,
        name: str,
        min: float | None = None,  # shadows the builtin: the names MaterialsStore and the tools use
        max: float | None = None,
        k: int = 20,
        *,
        equals: str | None = None,
        descending: bool = False,
    ) -> list[MaterialRecord]:
        """Up to k records whose property `name` is known and within [min, max], by value (ascending unless
        `descending`), ties in id order; `ordering` takes `equals` and lists the most stable first. The
        argument checks and errors are those of MaterialsStore.by_property."""
        column = property_column(name)
        if k < 1:
            return []
        code = check_property_arguments(column, min, max, equals)
        if code is not None:
            records = self._search(("ordering", code, k), chunk=k, magnetic_ordering=_ordering(code),
                                   _sort_fields="energy_above_hull")  # fmt: skip
            return sorted((r for r in records if r.get("ordering") == code), key=stability_key)[:k]
        if column not in _RANGES:
            searchable = ", ".join(c for c in PROPERTIES if c in _RANGES or c == ORDERING)
            raise InvalidMaterialsQuery(
                f"property {column!r} cannot be searched on the live Materials Project API: use one of {searchable}"
            )
        argument, sort_field = _RANGES[column]
        low, high = _bounds(column, min, max)
        records = self._search(("range", column, low, high, k, descending), chunk=k, **{argument: (low, high)},
                               _sort_fields=f"-{sort_field}" if descending else sort_field)  # fmt: skip
        known = [(value, r) for r in records if (value := scalar(r, column)) is not None and low <= value <= high]
        known.sort(key=lambda pair: (-pair[0] if descending else pair[0], id_key(pair[1].material_id)))
        return [r for _, r in known[:k]]

    def get(self, material_id: str) -> MaterialRecord:
        """The record with this id, with `elastic_tensor` from materials/elasticity when MP has one;
        MaterialNotFound (naming the ids of a formula given instead) when there is none."""
        text = material_id.strip()
        with self._lock:
            cached = self._cache.get(("get", text))
        if cached is not None:
            return cached
        found = self._search(("id", text), material_ids=[text]) if _ID.match(text) else []
        found = [r for r in found if r.material_id == text]
        if not found:
            raise MaterialNotFound(material_id, self._suggest_ids(text))
        record = self._with_tensor(found[0])
        self._remember(("get", text), record)
        return record

    def suggest_formulas(self, formula: str, n: int = 3) -> list[str]:
        """Formulas close to `formula`: its reduced formula when MP has records of it, then formulas this lookup
        has seen in earlier answers (the API offers no list of every formula to pick from)."""
        text, out = formula.strip(), []
        records = self.by_formula(text)
        out += [records[0].reduced_formula] if records else []
        with self._lock:
            known = list(dict.fromkeys(r.formula for r in self._seen.values()))
        folded = {f.lower(): f for f in known}
        out += [folded[text.lower()]] if text.lower() in folded else []
        out += [folded[c] for c in difflib.get_close_matches(text.lower(), list(folded), n=n, cutoff=0.6)]
        return list(dict.fromkeys(out))[:n]

    # the client ---------------------------------------------------------------------------------------------

    def _search(self, key: tuple[Any, ...], *, chunk: int | None = None, **criteria: Any) -> list[MaterialRecord]:
        """One summary page (the answer of `key`, cached) as records; API failures become MaterialsApiError."""
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        size = self.max_results if chunk is None else chunk
        # num_chunks=1: one page, never the client's "download the whole collection from S3" path
        docs = self._call("summary", lambda summary: summary.search(
            **criteria, fields=list(SUMMARY_FIELDS), num_chunks=1, chunk_size=size))  # fmt: skip
        records = [r for doc in docs if (r := _record(doc)) is not None]
        self._remember(key, tuple(records))
        with self._lock:
            self._seen.update((r.material_id, r) for r in records)
        return records

    def _with_tensor(self, record: MaterialRecord) -> MaterialRecord:
        """`record` plus the elasticity document's elastic_tensor, when the summary says MP computed moduli;
        `record` as it is when that request fails."""
        if record.get("elastic_tensor") or not (record.get("bulk_modulus") or record.get("shear_modulus")):
            return record
        try:
            docs = self._call("elasticity", lambda elasticity: elasticity.search(
                material_ids=[record.material_id], fields=["elastic_tensor"], num_chunks=1, chunk_size=1))  # fmt: skip
        except MaterialsApiError:  # the tensor only adds to a record the summary already answered
            return record
        tensor = _plain(docs[0]).get("elastic_tensor") if docs else None
        if tensor is None or check_field("elastic_tensor", tensor) is not None:
            return record
        return record_from_dict({**record.to_dict(), "elastic_tensor": tensor})

    def _call(self, route: str, query: Callable[[Any], Any]) -> Any:
        """Run `query` on the client's materials/`route` rester, turning the client's failures into errors that
        say what to do."""
        try:
            from mp_api.client.core import MPRestError
        except ImportError:
            MPRestError = _NeverRaised  # noqa: N806 -- an injected client without mp-api installed
        import requests

        where = self.endpoint or "https://api.materialsproject.org/"
        try:
            return query(self._route(route))
        except MPRestError as exc:
            message = str(exc)
            if re.search(r"status code 40[13]\b|Valid API keys are 32 characters", message):
                status = re.search(r"status code (\d+)", message)
                what = f"HTTP {status.group(1)}" if status else "the key is not 32 characters"
                raise MaterialsApiAuthError(f"the Materials Project API at {where} refused the API key "
                                            f"({what}): {KEY_FIX}") from exc  # fmt: skip
            first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            raise MaterialsApiError(f"the Materials Project API at {where} failed: {first}. Retry later, or "
                                    "check MP_API_ENDPOINT and the mp-api version") from exc  # fmt: skip
        except requests.RequestException as exc:
            raise MaterialsApiUnavailable(f"cannot reach the Materials Project API at {where} ({type(exc).__name__}):"
                                          " check the network connection, or MP_API_ENDPOINT") from exc  # fmt: skip
        except (KeyError, ValueError) as exc:  # a heartbeat or page without the fields the client reads
            raise MaterialsApiUnavailable(f"{where} does not answer like the Materials Project API "
                                          f"({type(exc).__name__}: {exc}): check MP_API_ENDPOINT") from exc  # fmt: skip

    def _rester(self) -> Any:
        """The client, made on first use: constructing MPRester already sends a request (GET heartbeat)."""
        with self._lock:
            if self._client is None:
                try:
                    from mp_api.client import MPRester
                except ImportError as exc:
                    raise MaterialsApiNotInstalled() from exc
                # dicts, not emmet documents: they are MP's JSON, the shape records are written in
                self._client = MPRester(self._api_key, endpoint=self.endpoint, use_document_model=False,
                                        mute_progress_bars=True)  # fmt: skip
            return self._client

    def _route(self, name: str) -> Any:
        """client.materials.<name>, its field list computed once: the client rebuilds the document's whole JSON
        schema for every field it checks, about a second per query of SUMMARY_FIELDS."""
        client = self._rester()
        with self._lock:
            if name not in self._routes:
                self._routes[name] = _with_fixed_fields(getattr(client.materials, name))
            return self._routes[name]

    def _remember(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = value

    def _suggest_ids(self, text: str) -> list[str]:
        """The ids of a formula passed where an id belongs, else seen ids that look alike."""
        if text and not _ID.match(text):
            ids = [r.material_id for r in self.by_formula(text)][:3]
            if ids:
                return ids
        with self._lock:
            seen = list(self._seen)
        return difflib.get_close_matches(text, seen, n=3, cutoff=0.6)


def materials_lookup_from_env(environ: Mapping[str, str] | None = None, **options: Any) -> LiveMaterialsLookup | None:
    """A LiveMaterialsLookup using $MP_API_KEY (and $MP_API_ENDPOINT when set), or None when no key is set.

    `options` go to LiveMaterialsLookup (max_results=...). Nothing is sent until the first query.
    """
    env = os.environ if environ is None else environ
    key = (env.get("MP_API_KEY") or "").strip()
    if not key:
        return None
    return LiveMaterialsLookup(key, endpoint=(env.get("MP_API_ENDPOINT") or "").strip() or None, **options)


class _NeverRaised(Exception):
    """Stands in for MPRestError when mp-api is not installed (an injected client cannot raise it)."""


def _mp_api_installed() -> bool:
    try:
        return importlib.util.find_spec("mp_api") is not None
    except (ImportError, ValueError):  # ValueError: a module blocked in sys.modules (as the tests do)
        return False


def _with_fixed_fields(rester: Any) -> Any:
    """`rester` with `available_fields` (a property that builds the JSON schema each time) read once, through a
    subclass made for it; any other object (an injected fake) as it is."""
    target = getattr(rester, "_obj", None) or rester  # client.materials.<name> is a LazyImport around the rester
    cls = type(target)
    if isinstance(getattr(cls, "available_fields", None), property):
        target.__class__ = type(cls.__name__, (cls,), {"available_fields": list(target.available_fields)})
    return rester


def _ordering(code: str) -> Any:
    """pymatgen's Ordering member for an MP code: summary.search takes only that enum."""
    from pymatgen.analysis.magnetism import Ordering

    return Ordering(code)


def _bounds(column: str, low: float | None, high: float | None) -> tuple[float, float]:
    """[low, high] with open ends closed far away; whole numbers for integer fields (the API types them)."""
    low = -_UNBOUNDED if low is None else float(low)
    high = _UNBOUNDED if high is None else float(high)
    if column in _INTEGER_COLUMNS:  # counts: never below 0, and a float bound would be a 422 from the API
        return max(math.ceil(low), 0), min(math.floor(high), 2**31 - 1)
    return low, high


def _plain(doc: Any) -> dict[str, Any]:
    """A document as a plain dict (an injected client may return pydantic documents)."""
    if isinstance(doc, Mapping):
        return dict(doc)
    dump = getattr(doc, "model_dump", None)
    return dict(dump(mode="json")) if callable(dump) else dict(vars(doc))


def _record(doc: Any) -> MaterialRecord | None:
    """A summary document as a record: nulls dropped, and values the record checks reject (MP's ordering
    "Unknown") dropped too rather than losing the material; None for a document without id or formula."""
    data = {k: v for k, v in _plain(doc).items() if v is not None}
    for name, value in list(data.items()):
        if name not in ("material_id", "formula_pretty") and check_field(name, value) is not None:
            del data[name]
    try:
        return record_from_dict(data, path="materials/summary")
    except InvalidMaterialRecord:
        return None
