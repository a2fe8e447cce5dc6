"""import_catalog on real CSV and JSONL files: mappings, real export shapes, errors naming file:line:field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.errors import InputDataError
from agentdistill.memory.catalog import CatalogItem, import_catalog, load_items, packaged_catalog_path

CSV = """show_id,kind,name,director,cast,country,release_year,rating,duration,listed_in,description,date_added
a1,Movie,First Film,"Ann Lee, Bo Park","X Y, Z W","France, ",2019,PG-13,94 min,"Dramas, Comedies","Two, one car.",2020
a2,tv show,Long Show,,,,2015,,3 Seasons,TV Dramas,"A family saga
over many years.",2021
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_a_mapping(tmp_path: Path) -> None:
    mapping = {"id": "show_id", "type": "kind", "title": "name", "countries": "country", "genres": "listed_in"}
    first, second = import_catalog(write(tmp_path / "titles.csv", CSV), mapping)
    assert first == CatalogItem(
        id="a1",
        type="Movie",
        title="First Film",
        director=("Ann Lee", "Bo Park"),
        cast=("X Y", "Z W"),
        countries=("France",),
        release_year=2019,
        rating="PG-13",
        duration_min=94,
        seasons=None,
        genres=("Dramas", "Comedies"),
        description="Two, one car.",
    )
    assert (second.type, second.seasons, second.duration_min, second.rating) == ("TV Show", 3, None, "")
    assert second.description == "A family saga\nover many years." and second.countries == ()


def test_the_shared_netflix_file_imports_with_one_mapping(shared_data: Path) -> None:
    items = import_catalog(shared_data / "recommendation" / "netflix_titles.jsonl", {"countries": "country"})
    assert len(items) == 8807 and items[0].id == "s1" and items[0].duration_min == 90
    assert sum(i.seasons is not None for i in items) == 2676


def test_packaged_format_needs_no_mapping(tmp_path: Path) -> None:
    items = load_items(packaged_catalog_path())[:3]
    path = write(tmp_path / "mine.jsonl", "".join(json.dumps(i.to_dict()) + "\n\n" for i in items))
    assert import_catalog(path) == items


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        ('{"id": "x", "title": "T", "type": "Movie", "release_year": "soon"}\n', 1, "release_year", "whole number"),
        ('{"id": "x", "title": "T", "type": "Movie"}\n', 1, "release_year", "missing"),
        ('{"id": "x", "title": "T", "type": "Movie", "release_year": 2001, "duration": "long"}\n', 1, "duration",
         "not a duration"),
        ('{"id": "x", "title": "T", "type": "Movie", "release_year": 2001, "genres": {"a": 1}}\n', 1, "genres",
         "list or comma-separated"),
        ('{"id": "x", "title": "T", "type": "Movie", "release_year": 2001}\n{"id": "x", "title": "U", "type": "Movie",'
         ' "release_year": 2002}\n', 2, "id", "already used on line 1"),
        ('{"id": "x", "title": "T", "type": "Movie", "release_year": 2001}\n{not json\n', 2, None, "not valid JSON"),
        ("[1, 2]\n", 1, None, "expected a JSON object"),
    ],
)  # fmt: skip
def test_bad_lines_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, problem: str
) -> None:
    path = write(tmp_path / "bad.jsonl", text)
    with pytest.raises(InputDataError, match=problem) as err:
        import_catalog(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    assert str(err.value).startswith(f"{path}:{line}")


def test_mapping_mistakes_are_caught_before_reading_data(tmp_path: Path) -> None:
    path = write(tmp_path / "titles.csv", CSV)
    with pytest.raises(InputDataError, match="unknown field 'country': did you mean 'countries'"):
        import_catalog(path, {"country": "country"})
    with pytest.raises(InputDataError, match="mapped column 'contry' .* Did you mean 'country'"):
        import_catalog(path, {"countries": "contry"})
    with pytest.raises(InputDataError, match="field 'id': is missing"):
        import_catalog(path)  # their id column is show_id: nothing maps it
    with pytest.raises(InputDataError, match="unknown file type '.xlsx'"):
        import_catalog(write(tmp_path / "t.xlsx", "x"))
    with pytest.raises(InputDataError, match="no such file"):
        import_catalog(tmp_path / "missing.csv")
    with pytest.raises(InputDataError, match="no items"):
        import_catalog(write(tmp_path / "empty.jsonl", "\n"))
