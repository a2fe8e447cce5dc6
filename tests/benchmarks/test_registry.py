"""Built-in suites, user suites and load_items: data dir, shipped files, errors that say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.agents.factory import AGENTS
from agentdistill.benchmarks.datasets import LOADERS
from agentdistill.benchmarks.metrics import METRICS
from agentdistill.benchmarks.suites.registry import (
    PACKAGE,
    REC_LOADERS,
    SUITES,
    CatalogRequired,
    DataDirRequired,
    DataFileNotFound,
    UnknownSuite,
    get_suite,
    load_items,
    suite_path,
    user_suite,
    with_path,
)
from agentdistill.errors import InputDataError
from agentdistill.memory.catalog import Catalog

EXPECTED_COUNTS = {
    "hotpotqa": 388, "2wiki": 120, "musique": 120, "gsm8k": 800, "gsm8k-train": 7473, "svamp": 600, "math500": 300,
}  # fmt: skip


def test_every_suite_names_a_real_loader_metric_agent_and_kb_mode() -> None:
    assert set(SUITES) == {*EXPECTED_COUNTS, "sample", "gsm8k-sample", "bamboogle", "rec-netflix", "rec-requests",
                           "materials", "materials-sample"}  # fmt: skip
    for suite in SUITES.values():
        assert suite.agent in AGENTS and suite.license and suite.description, suite.name
        assert suite.kb in ("contexts", "named", "none", "records"), suite.name
        if suite.episode is not None:  # recommendation suites: items from the catalog, scored by their episode
            assert suite.loader in REC_LOADERS and suite.metric == "rec" and suite.agent == "recbot", suite.name
            assert suite.kb == "none" and suite.episode in ("simulated", "requests"), suite.name
            continue
        if suite.kb == "records":  # materials: questions generated from the records the agent searches
            assert (suite.loader, suite.metric, suite.agent) == ("materials", "materials", "materials"), suite.name
            continue
        assert suite.loader in LOADERS and suite.metric in METRICS, suite.name
        assert (suite.metric == "math") == (suite.kb == "none"), suite.name
    assert get_suite("musique").agent == "lag" and get_suite("math500").agent == "codeact"
    assert get_suite("sample").kb_name == "sample" and get_suite("bamboogle").kb_name is None


def test_shipped_suites_need_no_data_dir() -> None:
    sample = load_items(get_suite("sample"), None)
    assert len(sample) == 48 and sample[0].id == "5a71166d5542994082a3e576" and sample[0].answer == "Battle of Guam"
    assert sample[0].meta["type"] == "comparison"
    gsm = load_items(get_suite("gsm8k-sample"), None)
    assert len(gsm) == 60 and gsm[0].id == "gsm8k_test_0000" and gsm[0].answers == ("18",)
    assert len(load_items(get_suite("gsm8k-sample"), None, limit=5)) == 5
    license_note = suite_path(get_suite("gsm8k-sample"), None).parent / "SAMPLE_DATA_LICENSE.md"
    assert "MIT" in license_note.read_text(encoding="utf-8")


def test_gsm8k_sample_is_the_first_60_shared_test_items(shared_data: Path) -> None:
    shipped = [json.loads(line) for line in suite_path(get_suite("gsm8k-sample"), None).open(encoding="utf-8")]
    with (shared_data / "math/gsm8k_test_shared.jsonl").open(encoding="utf-8") as handle:
        source = [json.loads(line) for _, line in zip(range(60), handle, strict=False)]
    assert shipped == [{k: row[k] for k in ("id", "question", "answer")} for row in source]


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_data_dir_suites_load_the_shared_files(shared_data: Path, name: str) -> None:
    items = load_items(get_suite(name), shared_data)
    assert len(items) == EXPECTED_COUNTS[name]
    if get_suite(name).kb == "contexts":
        assert all(item.contexts for item in items)


def test_data_dir_required_says_how_to_set_it_and_which_file() -> None:
    with pytest.raises(DataDirRequired) as err:
        load_items(get_suite("hotpotqa"), None)
    message = str(err.value)
    assert "--data-dir DIR" in message and 'data_dir = "DIR"' in message and "config.toml" in message
    assert "hotpotqa/dev_shared.jsonl" in message and "sample" in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFound) as err:
        load_items(get_suite("gsm8k"), tmp_path)
    assert str(tmp_path / "math/gsm8k_test_shared.jsonl") in str(err.value)
    with pytest.raises(DataFileNotFound, match="Bamboogle is not shipped"):
        load_items(get_suite("bamboogle"), tmp_path)


def test_unknown_suite_lists_names_and_guesses() -> None:
    with pytest.raises(UnknownSuite) as err:
        get_suite("hotpot")
    assert "'hotpotqa'" in str(err.value) and "gsm8k-sample" in str(err.value)


def test_user_suite_reads_any_path_with_a_field_mapping(tmp_path: Path) -> None:
    path = tmp_path / "my evals.jsonl"
    path.write_text(json.dumps({"prompt": "2+3?", "target": "5"}) + "\n", encoding="utf-8")
    suite = user_suite(path, metric="math", fields={"question": "prompt", "answer": "target"})
    assert (suite.name, suite.loader, suite.kb, suite.path) == ("my-evals", "jsonl", "none", str(path.resolve()))
    [item] = load_items(suite, None)  # absolute path: no data dir needed
    assert (item.question, item.answers) == ("2+3?", ("5",))
    assert user_suite(path, kb_name="wiki").kb == "named"
    path.write_text(json.dumps({"prompt": "2+3?"}) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="field 'target'"):
        load_items(suite, None)


def test_bamboogle_from_a_user_path_keeps_the_suite_settings(tmp_path: Path) -> None:
    path = tmp_path / "bamboogle.jsonl"
    path.write_text(json.dumps({"Question": "Who?", "Answer": "Ada"}) + "\n", encoding="utf-8")
    suite = with_path(get_suite("bamboogle"), path)
    assert (suite.loader, suite.kb) == ("bamboogle", "named")
    assert [i.answers for i in load_items(suite, None)] == [("Ada",)]
    assert user_suite(path, loader="bamboogle", kb_name="wiki").loader == "bamboogle"


def test_package_paths_resolve_inside_the_installed_package() -> None:
    path = suite_path(get_suite("sample"), None)
    assert get_suite("sample").path.startswith(PACKAGE) and path.is_file() and path.parent.name == "data"


def test_rec_suites_make_their_items_from_the_catalog(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(CatalogRequired, match="rec-netflix"):
        load_items(get_suite("rec-netflix"), None)
    sessions = load_items(get_suite("rec-netflix"), None, catalog=catalog)  # packaged: no data dir needed
    assert len(sessions) == 40 and sessions == load_items(get_suite("rec-netflix"), None, catalog=catalog)
    assert len(load_items(get_suite("rec-netflix"), None, catalog=catalog, limit=30)) == 30
    assert all(catalog.get(item.answer).title == item.meta["target_title"] for item in sessions)
    with pytest.raises(DataFileNotFound, match="interecagent_requests_shared.jsonl"):
        load_items(get_suite("rec-requests"), tmp_path, catalog=catalog)
