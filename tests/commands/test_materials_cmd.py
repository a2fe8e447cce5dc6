"""`agentdistill materials ...` through click's CliRunner on stores imported in the test (hashing embedder), and
`ask --agent materials --materials DIR` answering from such a store with a scripted model."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentdistill.cli import cli, main
from agentdistill.memory.materials import MaterialsStore
from agentdistill.memory.trajectories import TrajectoryStore

FAST = ("--embedder", "hashing:64")
TENSOR = [[250.0 if i == j else 100.0 for j in range(3)] + [0.0] * 3 for i in range(3)] + [
    [0.0] * 3 + [80.0 if i == j else 0.0 for j in range(3)] for i in range(3)
]
FIRST = [
    {"material_id": "mp-19770", "formula_pretty": "Fe2O3", "ordering": "FiM", "band_gap": 2.1,
     "total_magnetization_normalized_formula_units": 4.0, "energy_above_hull": 0.0},
    {"material_id": "mp-13", "formula_pretty": "Fe", "ordering": "FM", "band_gap": 0.0,
     "total_magnetization_normalized_formula_units": 2.2, "elastic_tensor": {"raw": TENSOR}},
    {"material_id": "mp-2403", "formula_pretty": "YPt3", "ordering": "NM"},
]  # fmt: skip
SECOND = [
    {"material_id": "mp-2403", "formula_pretty": "YPt3", "ordering": "FM", "energy_above_hull": 0.0},  # replaces
    {"material_id": "mp-5777", "formula_pretty": "BaTiO3", "band_gap": 2.293, "ordering": "NM"},
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["materials", *args], catch_exceptions=True)


def jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    """The real entry point (exit 2 for an AgentDistillError), as `run_main(*args) -> (exit code, stderr)`; the
    environment variable and SIGTERM handler it installs are undone after the test."""
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handler = signal.getsignal(signal.SIGTERM)

    def run(*args: str) -> tuple[int, str]:
        try:
            with pytest.raises(SystemExit) as done:
                main(list(args))
        finally:
            signal.signal(signal.SIGTERM, handler)
        return int(done.value.code or 0), capsys.readouterr().err

    return run


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    first, second = jsonl(tmp_path / "a.jsonl", FIRST), jsonl(tmp_path / "b.jsonl", SECOND)
    result = invoke("import", str(first), str(second), "--dir", str(store), *FAST, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["records"] == 4 and data["replaced"] == 1
    assert data["files"] == {str(first): 3, str(second): 2}
    return store


def test_help_of_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("import", "info", "search"):
        assert command in result.output
        assert invoke(command, "--help").exit_code == 0
    assert "--skip-missing-formula" in invoke("import", "--help").output
    assert "--by" in invoke("search", "--help").output
    assert "--materials" in CliRunner().invoke(cli, ["ask", "--help"]).output


def test_import_merges_files_and_info_counts(imported: Path, tmp_path: Path) -> None:
    store = MaterialsStore.open(imported)
    assert store.get("mp-2403").get("ordering") == "FM"  # the second file's record won
    store.close()
    info = json.loads(invoke("info", "--dir", str(imported), "--json").stdout)
    assert (info["records"], info["formulas"], info["chemical_systems"], info["elements"]) == (4, 4, 4, 6)
    assert info["orderings"] == {"FM": 2, "FiM": 1, "NM": 1}
    assert (info["with_elastic_tensor"], info["with_band_gap"], info["with_magnetization"]) == (1, 3, 2)
    assert info["embedder"] == "hashing-64" and info["directory"] == str(imported)
    shown = invoke("info", "--dir", str(imported))
    assert shown.exit_code == 0 and "hashing-64" in shown.output and "FM 2" in shown.output

    summary = invoke("import", str(jsonl(tmp_path / "c.jsonl", SECOND)), "--dir", str(imported), *FAST)
    assert summary.exit_code == 0, summary.output
    assert "imported 2 records" in summary.stdout and "0 with an elastic tensor" in summary.stdout
    assert len(MaterialsStore.open(imported)) == 2  # a new generation replaced the store


def test_search_by_formula_elements_id_and_text(imported: Path) -> None:
    where = ("--dir", str(imported))
    formula = invoke("search", "Fe4O6", *where)  # auto: a formula; the reduced one finds Fe2O3
    assert formula.exit_code == 0, formula.output
    assert "- mp-19770 Fe2O3 | ordering=FiM" in formula.output
    elements = invoke("search", "Fe,O", *where)
    assert "1 record(s) containing Fe, O" in elements.output
    exact = json.loads(invoke("search", "Fe", "--by", "elements", "--exact", *where, "--json").stdout)
    assert exact["by"] == "elements" and [r["material_id"] for r in exact["records"]] == ["mp-13"]
    record = invoke("search", "mp-5777", *where)
    assert record.output.startswith("mp-5777 BaTiO3") and "band_gap: 2.293 eV" in record.output
    text = json.loads(invoke("search", "ferrimagnetic iron oxide", *where, "-k", "2", "--json").stdout)
    assert text["by"] == "text" and len(text["records"]) == 2 and "score" in text["records"][0]
    assert "closest in meaning" in invoke("search", "ferrimagnetic iron oxide", *where).output

    data = json.loads(invoke("search", "Fe2O3", *where, "--json").stdout)
    assert data["count"] == 1
    assert data["records"] == [
        {"material_id": "mp-19770", "formula": "Fe2O3", "reduced_formula": "Fe2O3", "chemsys": "Fe-O",
         "fields": {"ordering": "FiM", "total_magnetization_normalized_formula_units": 4.0,
                    "energy_above_hull": 0.0, "band_gap": 2.1, "has_elastic_tensor": False}},
    ]  # fmt: skip
    full = json.loads(invoke("search", "mp-13", *where, "--json").stdout)["records"][0]
    assert full["fields"]["elastic_tensor"] == {"raw": TENSOR}  # --by id: every field


def test_search_errors_exit_2(imported: Path, run_main: Callable[..., tuple[int, str]]) -> None:
    code, err = run_main("materials", "search", "mp-99999", "--dir", str(imported))
    assert code == 2 and "no material with id 'mp-99999'" in err
    code, err = run_main("materials", "search", "Fe-Xx", "--by", "elements", "--dir", str(imported))
    assert code == 2 and "'Xx' is not a chemical element" in err
    code, err = run_main("materials", "info", "--dir", str(imported.parent / "nowhere"))
    assert code == 2 and "agentdistill materials import FILE --dir" in err


def test_a_bad_field_stops_the_import_and_leaves_the_store(
    imported: Path, tmp_path: Path, run_main: Callable[..., tuple[int, str]]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(SECOND[1]) + "\n\n" + json.dumps({**FIRST[0], "band_gap": "wide"}) + "\n")
    fresh = tmp_path / "fresh"
    code, err = run_main("materials", "import", str(bad), "--dir", str(fresh), *FAST)
    assert code == 2 and f"{bad}:3: field 'band_gap'" in err and "Traceback" not in err
    assert not fresh.exists()  # nothing written
    code, err = run_main("materials", "import", str(bad), "--dir", str(imported), *FAST)
    assert code == 2 and f"{bad}:3" in err
    assert len(MaterialsStore.open(imported)) == 4  # the previous store still opens, unchanged

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(FIRST[0]) + '\n{"material_id": "mp-1", \n')
    code, err = run_main("materials", "import", str(broken), "--dir", str(fresh), *FAST)
    assert code == 2 and f"{broken}:2: not valid JSON" in err and not fresh.exists()


def test_a_json_array_file_imports_and_names_lines(tmp_path: Path, run_main: Callable[..., tuple[int, str]]) -> None:
    array = tmp_path / "records.json"
    array.write_text("[\n" + ",\n".join(json.dumps(r) for r in SECOND) + "\n]\n", encoding="utf-8")
    result = invoke("import", str(array), "--dir", str(tmp_path / "s"), *FAST, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records"] == 2
    array.write_text("[\n" + json.dumps(SECOND[0]) + ",\n" + json.dumps({**SECOND[1], "ordering": 3}) + "\n]")
    code, err = run_main("materials", "import", str(array), "--dir", str(tmp_path / "t"), *FAST)
    assert code == 2 and f"{array}:3: field 'ordering'" in err


def test_ask_answers_from_the_imported_store(imported: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MP_API_KEY", "not-a-key")  # an explicit --materials wins over the live API
    replies = [
        "Delegate: data\nTask: What is the magnetic ordering of YPt3?",
        'Action: search_formula\nAction Input: {"formula": "YPt3"}',
        "Final Answer: FM (mp-2403)",
        "Final Answer: YPt3 is ferromagnetic (mp-2403)",
    ]
    script = home / "script.json"
    script.write_text(json.dumps(replies), encoding="utf-8")
    args = ["ask", "--agent", "materials", "--materials", str(imported), "--model", f"scripted:{script}", "YPt3?"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "YPt3 is ferromagnetic (mp-2403)" in result.stdout
    with TrajectoryStore.open(home / "trajectories.db") as store:
        (run,) = store.runs()
    observation = next(s.observation for s in run.steps if s.kind == "tool")
    assert "mp-2403 YPt3 | ordering=FM" in observation  # the imported record, not the shipped sample's NM one


def test_materials_with_another_agent_is_a_usage_error(imported: Path, home: Path) -> None:
    script = home / "script.json"
    script.write_text(json.dumps(["Final Answer: never asked"]), encoding="utf-8")
    args = ["ask", "--agent", "react", "--materials", str(imported), "--model", f"scripted:{script}", "q?"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--materials is an option of the materials agent" in result.output
