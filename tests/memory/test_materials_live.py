"""LiveMaterialsLookup against a real local HTTP server that speaks the Materials Project API the way the official
client (mp-api) calls it: GET /heartbeat when the client is made, then GET /materials/summary/ and
/materials/elasticity/ with filters, `_fields`, `_limit` and `_sort_fields` as query parameters, the key in the
x-api-key header, answers as {"data": [...], "meta": {...}}. Nothing here reaches api.materialsproject.org.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("mp_api")

from agentdistill.memory.materials import (  # noqa: E402 -- after the skip: these tests need the extra
    InvalidMaterialsQuery,
    LiveMaterialsLookup,
    MaterialNotFound,
    MaterialsApiAuthError,
    MaterialsApiNotInstalled,
    MaterialsApiUnavailable,
    UnknownMaterialProperty,
    materials_lookup_from_env,
    parse_formula,
)
from agentdistill.tools.materials import make_materials_tools  # noqa: E402

KEY = "k" * 32  # the client rejects keys that are not 32 characters before sending anything
# From /work/shared/data/materials/mp_records_shared.jsonl (Materials Project, CC BY 4.0), summary fields only.
SUMMARY = [
    {"material_id": "mp-19109", "formula_pretty": "FePO4", "ordering": "FM", "is_magnetic": True,
     "total_magnetization": 15.0000006, "total_magnetization_normalized_formula_units": 5.0000002},
    {"material_id": "mp-1048924", "formula_pretty": "FePO4", "energy_above_hull": 0.20172496479166657,
     "is_stable": False, "band_gap": 0.8201, "ordering": "FM", "is_magnetic": True, "total_magnetization": 40.0047871},
    {"material_id": "mp-25303", "formula_pretty": "FePO4", "ordering": "FM", "is_magnetic": True,
     "total_magnetization": 10.0000039},
    {"material_id": "mp-1020057", "formula_pretty": "LiLaO2", "energy_above_hull": 0.023029582187499287,
     "is_stable": False, "band_gap": 3.7336},
    {"material_id": "mp-1229010", "formula_pretty": "AgSbS2", "energy_above_hull": 0.11462453000000039,
     "is_stable": False, "band_gap": 0.0},
    {"material_id": "mp-1008728", "formula_pretty": "Ni", "bulk_modulus": {"voigt": 192.55, "reuss": 192.55,
     "vrh": 192.55}, "universal_anisotropy": -7.213, "homogeneous_poisson": 0.639},
]  # fmt: skip
NI_TENSOR = [[136.0, 221.0, 221.0, 0, 0, 0], [221.0, 136.0, 221.0, 0, 0, 0], [221.0, 221.0, 136.0, 0, 0, 0],
             [0, 0, 0, 157.0, 0, 0], [0, 0, 0, 0, 157.0, 0], [0, 0, 0, 0, 0, 157.0]]  # fmt: skip
ELASTICITY = [{"material_id": "mp-1008728", "formula_pretty": "Ni", "elastic_tensor": {"ieee_format": NI_TENSOR}}]
FEPO4_STABLE_FIRST = ["mp-1048924", "mp-19109", "mp-25303"]  # known hull first, then missing ones by id


class FakeMaterialsProject:
    """`with FakeMaterialsProject() as mp:` serves the MP API at `mp.endpoint`; `mp.requests` logs (path, params)."""

    def __init__(self, *, key: str = KEY, refuse_with: int = 401) -> None:
        self.key, self.refuse_with = key, refuse_with
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def __enter__(self) -> FakeMaterialsProject:
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def data_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [r for r in self.requests if r[0] != "/heartbeat"]

    def answer(self, path: str, params: dict[str, str], key: str | None) -> tuple[int, dict[str, Any]]:
        if path == "/heartbeat":  # public: MP answers it without a key
            return 200, {"db_version": "2025.09.25", "access_controlled_batch_ids": [], "version": "0.87.3"}
        if key != self.key:  # what MP's gateway answers for a missing or wrong key
            return self.refuse_with, {"message": "Invalid authentication credentials"}
        docs = {"/materials/summary/": SUMMARY, "/materials/elasticity/": ELASTICITY}.get(path)
        if docs is None:
            return 404, {"detail": "Not Found"}
        found = [d for d in docs if _matches(d, params)]
        for sort_field in reversed([f for f in params.get("_sort_fields", "").split(",") if f]):
            name = sort_field.lstrip("-")  # nulls first when ascending, as MongoDB sorts
            found.sort(key=lambda d: (_value(d, name) is not None, _value(d, name) or 0), reverse=sort_field[0] == "-")
        skip, limit = int(params.get("_skip", 0)), int(params.get("_limit", 1000))
        fields = params["_fields"].split(",") if params.get("_fields") else None
        page = [{f: d.get(f) for f in fields} if fields else d for d in found[skip : skip + limit]]
        return 200, {"data": page, "meta": {"total_doc": len(found), "max_limit": 1000}}


def _handler(server: FakeMaterialsProject) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the http.server hook name
            url = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            server.requests.append((url.path, params))
            try:
                status, body = server.answer(url.path, params, self.headers.get("x-api-key"))
            except Exception as exc:  # a bug in the fake: answer it, or the client retries a dropped connection
                status, body = 500, {"detail": f"fake server: {exc!r}"}
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _elements(doc: dict[str, Any]) -> set[str]:
    return {e.symbol for e in parse_formula(doc["formula_pretty"]).elements}


def _value(doc: dict[str, Any], name: str) -> Any:
    if name == "nelements":
        return len(_elements(doc))
    value: Any = doc
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


_RANGE_FIELDS = {"k_vrh": "bulk_modulus.vrh"}


def _matches(doc: dict[str, Any], params: dict[str, str]) -> bool:
    for name, raw in params.items():
        values = raw.split(",")
        if name == "material_ids" and doc["material_id"] not in values:
            return False
        reduced = parse_formula(doc["formula_pretty"]).reduced_formula
        if name == "formula" and reduced not in {parse_formula(v).reduced_formula for v in values}:
            return False
        if name == "chemsys" and "-".join(sorted(_elements(doc))) not in values:
            return False
        if name == "elements" and not set(values) <= _elements(doc):
            return False
        if name == "ordering" and doc.get("ordering") != raw:
            return False
        if name.endswith(("_min", "_max")):
            value = _value(doc, _RANGE_FIELDS.get(name[:-4], name[:-4]))
            if value is None or (value < float(raw) if name.endswith("_min") else value > float(raw)):
                return False
    return True


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any lookup of a host other than 127.0.0.1: the client must never reach the real API (or S3)."""
    resolve = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", b"127.0.0.1"):
            raise AssertionError(f"the test tried to reach {host!r}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def mp() -> Iterator[FakeMaterialsProject]:
    with FakeMaterialsProject() as server:
        yield server


@pytest.fixture
def live(mp: FakeMaterialsProject) -> LiveMaterialsLookup:
    return LiveMaterialsLookup(KEY, endpoint=mp.endpoint)


def test_by_formula_lists_polymorphs_most_stable_first_and_caches(
    live: LiveMaterialsLookup, mp: FakeMaterialsProject
) -> None:
    records = live.by_formula("FePO4")
    assert [r.material_id for r in records] == FEPO4_STABLE_FIRST
    assert records[0].number("band_gap") == 0.8201 and "young_modulus" not in records[0].fields  # nulls dropped
    assert [r.material_id for r in live.by_formula(" Fe2P2O8 ")] == FEPO4_STABLE_FIRST  # asks for the reduced one
    assert live.by_formula("ABO3") == [] and live.by_formula("FePO4") == records
    (path, params), *others = mp.data_requests()
    assert not others  # one request answered all four calls: the cache, and no request for a non-formula
    assert path == "/materials/summary/" and params["formula"] == "FePO4"
    assert params["_sort_fields"] == "energy_above_hull" and "material_id" in params["_fields"].split(",")
    assert live.by_formula("Fe2O3") == []


def test_get_adds_the_elastic_tensor_and_unknown_ids_raise(live: LiveMaterialsLookup, mp: FakeMaterialsProject) -> None:
    ni = live.get("mp-1008728")
    assert (ni.formula, ni.bulk_modulus_vrh) == ("Ni", 192.55)
    assert ni.fields["elastic_tensor"] == {"ieee_format": NI_TENSOR}
    assert live.get("mp-1008728") is ni
    assert [p for p, _ in mp.data_requests()] == ["/materials/summary/", "/materials/elasticity/"]
    assert live.get("mp-1020057").get("elastic_tensor") is None  # no moduli: no elasticity request
    with pytest.raises(MaterialNotFound) as missing:
        live.get("mp-99999999")
    assert isinstance(missing.value, LookupError)
    with pytest.raises(MaterialNotFound) as formula:
        live.get("FePO4")
    assert formula.value.suggestions == FEPO4_STABLE_FIRST


def test_by_elements(live: LiveMaterialsLookup, mp: FakeMaterialsProject) -> None:
    assert [r.material_id for r in live.by_elements(["fe", "oxygen"])] == FEPO4_STABLE_FIRST
    assert mp.data_requests()[-1][1]["elements"] == "Fe,O"
    assert [r.material_id for r in live.by_elements("Fe-O-P", exact=True)] == FEPO4_STABLE_FIRST
    assert mp.data_requests()[-1][1]["chemsys"] == "Fe-O-P"
    assert live.by_elements(["Fe", "O"], exact=True) == []
    assert [r.material_id for r in live.by_elements(["O"])] == [*FEPO4_STABLE_FIRST, "mp-1020057"]
    with pytest.raises(InvalidMaterialsQuery):
        live.by_elements(["Xx"])


def test_by_property_ranges_and_ordering(live: LiveMaterialsLookup, mp: FakeMaterialsProject) -> None:
    assert [r.material_id for r in live.by_property("band_gap", 0.5, 4)] == ["mp-1048924", "mp-1020057"]
    params = mp.data_requests()[-1][1]
    assert (params["band_gap_min"], params["band_gap_max"], params["_limit"]) == ("0.5", "4.0", "20")
    assert [r.material_id for r in live.by_property("band_gap", max=1, k=2, descending=True)] == [
        "mp-1048924",
        "mp-1229010",
    ]
    assert [r.material_id for r in live.by_property("bulk_modulus", min=100)] == ["mp-1008728"]
    assert mp.data_requests()[-1][1]["k_vrh_min"] == "100.0"
    assert [r.material_id for r in live.by_property("ordering", equals="ferromagnetic")] == FEPO4_STABLE_FIRST
    assert mp.data_requests()[-1][1]["ordering"] == "FM"
    assert [r.material_id for r in live.by_property("nelements", max=1)] == ["mp-1008728"]
    with pytest.raises(InvalidMaterialsQuery, match="cannot be searched on the live"):
        live.by_property("decomposition_enthalpy", min=0)
    with pytest.raises(UnknownMaterialProperty):
        live.by_property("bandgapp", min=0)
    with pytest.raises(InvalidMaterialsQuery, match="swap"):
        live.by_property("band_gap", 2, 1)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_says_how_to_fix_it(status: int) -> None:
    with FakeMaterialsProject(refuse_with=status) as server:
        live = LiveMaterialsLookup("x" * 32, endpoint=server.endpoint)
        with pytest.raises(MaterialsApiAuthError, match=f"HTTP {status}.*set MP_API_KEY to your key from materials"):
            live.by_formula("FePO4")


def test_a_malformed_key_and_an_unreachable_endpoint() -> None:
    with FakeMaterialsProject() as server:
        with pytest.raises(MaterialsApiAuthError, match="not 32 characters.*MP_API_KEY"):
            LiveMaterialsLookup("short", endpoint=server.endpoint).by_formula("FePO4")
        assert server.data_requests() == []
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MaterialsApiUnavailable, match=f"cannot reach .*127.0.0.1:{port}.*MP_API_ENDPOINT"):
        LiveMaterialsLookup(KEY, endpoint=f"http://127.0.0.1:{port}/").get("mp-13")


def test_without_the_extra_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mp_api", None)
    with pytest.raises(MaterialsApiNotInstalled, match=r"pip install 'agentdistill\[mp\]'"):
        LiveMaterialsLookup(KEY)


def test_materials_lookup_from_env() -> None:
    assert materials_lookup_from_env({}) is None
    assert materials_lookup_from_env({"MP_API_KEY": "  "}) is None
    live = materials_lookup_from_env({"MP_API_KEY": KEY, "MP_API_ENDPOINT": "http://127.0.0.1:9/"}, max_results=5)
    assert isinstance(live, LiveMaterialsLookup)
    assert (live.endpoint, live.max_results) == ("http://127.0.0.1:9/", 5)


def test_the_materials_tools_answer_from_the_live_api(live: LiveMaterialsLookup) -> None:
    tools = {t.name: t for t in make_materials_tools(live)}
    text = tools["search_formula"].fn(formula="FePO4")
    assert "3 record(s), most stable first" in text
    assert all(i in text for i in FEPO4_STABLE_FIRST) and text.index("mp-1048924") < text.index("mp-19109")
    assert "mp-1020057" in tools["search_property"].fn(property="band gap", min=3.0, max=4.0)
    assert "bulk modulus K: 192.667" in tools["elastic_moduli"].fn(material_id="mp-1008728")
    assert "Error: no material with id 'mp-4'" in tools["get_record"].fn(material_id="mp-4")
    assert "No record for Fe2O3" in tools["search_formula"].fn(formula="Fe2O3")


def test_ask_with_mp_api_key_set_answers_from_the_live_api(
    mp: FakeMaterialsProject, monkeypatch: pytest.MonkeyPatch, home: Any
) -> None:
    from click.testing import CliRunner

    from agentdistill.commands.chat import ask
    from agentdistill.memory.trajectories import TrajectoryStore

    monkeypatch.setenv("MP_API_KEY", KEY)
    monkeypatch.setenv("MP_API_ENDPOINT", mp.endpoint)
    script = home / "script.json"
    script.write_text(json.dumps([
        "Delegate: data\nTask: the most stable FePO4",
        'Action: search_formula\nAction Input: {"formula": "FePO4"}',
        "Final Answer: FM (mp-1048924)",
        "Final Answer: FePO4 is ferromagnetic (mp-1048924)",
    ]), encoding="utf-8")  # fmt: skip
    result = CliRunner().invoke(ask, ["--agent", "materials", "--model", f"scripted:{script}", "FePO4 ordering?"],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "live Materials Project API" in result.stderr and "FePO4 is ferromagnetic (mp-1048924)" in result.stdout
    assert mp.data_requests()  # the search went to the (fake) API, not to the shipped records
    with TrajectoryStore.open(home / "trajectories.db") as store:
        [run] = store.runs()
    observation = next(s.observation for s in run.steps if s.kind == "tool")
    assert observation.startswith("FePO4 (molar mass 150.8164 g/mol): 3 record(s), most stable first")


def test_an_unreachable_api_is_an_error_the_model_reads() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tools = {t.name: t for t in make_materials_tools(LiveMaterialsLookup(KEY, endpoint=f"http://127.0.0.1:{port}/"))}
    text = tools["search_formula"].fn(formula="FePO4")
    assert text.startswith("Error: the Materials Project records are unavailable: cannot reach")
