"""A six-title catalog for tests of the catalog store, its tools and recbot: small enough to reason about by hand."""

from __future__ import annotations

from agentdistill.memory.catalog import CatalogItem


def movie(id: str, title: str, genres: tuple[str, ...], year: int, description: str, **more: object) -> CatalogItem:
    """A movie with plain defaults for the fields a test does not care about."""
    fields = dict(director=(), cast=(), countries=("United States",), rating="PG-13", duration_min=100, seasons=None)
    fields.update(more)
    return CatalogItem(id=id, type="Movie", title=title, release_year=year, genres=genres, description=description,
                       **fields)  # type: ignore[arg-type]  # fmt: skip


def small_catalog_items() -> list[CatalogItem]:
    """Three ghost stories by a lake, a lake comedy, a river drama (rated R) and a long heist thriller."""
    return [
        movie("h1", "Night House", ("Horror Movies",), 2020, "A widow finds ghosts haunting her lake house."),
        movie("h2", "Ghost Lake", ("Horror Movies",), 2019, "Ghosts haunt a family at their lake house."),
        movie("h3", "The Attic", ("Horror Movies", "Thrillers"), 2001, "A haunted attic hides ghosts of a family."),
        movie("c1", "Lake Laughs", ("Comedies",), 2018, "Friends joke around at a lake house weekend."),
        movie("d1", "Quiet River", ("Dramas",), 2015, "A grieving father rebuilds his life by the river.", rating="R"),
        movie("t1", "Vault", ("Thrillers",), 2012, "A crew plans a bank heist in Paris.", duration_min=140),
    ]
