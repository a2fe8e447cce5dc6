"""Reading the arguments of materials queries the way a person (or a model) writes them, with errors that help.

"fe", "FE" and "iron" all mean Fe; "Fe-O", "Fe,O" and ["Fe", "O"] are the same element set; "ferromagnetic"
and "fm" mean ordering FM; "bulk_modulus" means the bulk_modulus_vrh column. Anything else raises an
`InvalidMaterialsQuery` naming what is valid and, where one is close, what was probably meant.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from functools import cache

from pymatgen.core import Element

from agentdistill.errors import AgentDistillError
from agentdistill.memory.materials.checks import ORDERING_WORDS, ORDERINGS
from agentdistill.memory.materials.db import NUMERIC_COLUMNS

ORDERING = "ordering"
PROPERTIES = (*NUMERIC_COLUMNS, ORDERING)  # what by_property accepts
ALIASES = {  # MP field names and common shorthands -> our column
    "total_magnetization_normalized_formula_units": "magnetization",
    "magnetic_moment": "magnetization",
    "bulk_modulus": "bulk_modulus_vrh",
    "k_vrh": "bulk_modulus_vrh",
    "e_above_hull": "energy_above_hull",
    "formation_energy": "formation_energy_per_atom",
    "gap": "band_gap",
    "magnetic_ordering": ORDERING,
}
_SPLIT = re.compile(r"[\s,;/-]+")


class InvalidMaterialsQuery(AgentDistillError):
    """A query argument that names nothing the store knows: an unknown property, element or ordering."""


class UnknownMaterialProperty(InvalidMaterialsQuery):
    def __init__(self, name: str) -> None:
        guess = difflib.get_close_matches(name.lower(), [*PROPERTIES, *ALIASES], n=1, cutoff=0.6)
        hint = f" Did you mean {ALIASES.get(guess[0], guess[0])!r}?" if guess else ""
        super().__init__(f"unknown material property {name!r}: valid names are {', '.join(PROPERTIES)}.{hint}")
        self.name = name


class UnknownElement(InvalidMaterialsQuery):
    def __init__(self, text: str, guesses: Sequence[str]) -> None:
        hint = f" Did you mean {', '.join(repr(g) for g in guesses)}?" if guesses else ""
        super().__init__(
            f"{text!r} is not a chemical element: give symbols such as 'Fe', 'O' (or names like 'iron').{hint}"
        )
        self.text, self.guesses = text, list(guesses)


def property_column(name: str) -> str:
    """The column `name` means (a column name or an alias, any case); UnknownMaterialProperty otherwise."""
    wanted = name.strip().lower()
    column = ALIASES.get(wanted, wanted)
    if column not in PROPERTIES:
        raise UnknownMaterialProperty(name)
    return column


def ordering_code(text: str) -> str:
    """'FM', 'fm' or 'ferromagnetic' -> 'FM'; InvalidMaterialsQuery listing the codes otherwise."""
    wanted = text.strip().lower()
    for code in ORDERINGS:
        if wanted in (code.lower(), ORDERING_WORDS[code]):
            return code
    choices = ", ".join(f"{c} ({w})" for c, w in ORDERING_WORDS.items())
    raise InvalidMaterialsQuery(f"unknown magnetic ordering {text!r}: use one of {choices}")


def check_property_arguments(column: str, min: float | None, max: float | None, equals: str | None) -> str | None:
    """The ordering code for an `ordering` query, None for a number range; InvalidMaterialsQuery when the
    arguments do not fit the property (every lookup, local or live, checks them the same way)."""
    if column == ORDERING:
        if equals is None or min is not None or max is not None:
            raise InvalidMaterialsQuery("property 'ordering' is not a number: pass equals='FM' (or NM, FiM, AFM)")
        return ordering_code(equals)
    if equals is not None:
        raise InvalidMaterialsQuery(f"property {column!r} is a number: pass min= and/or max=, not equals=")
    if min is not None and max is not None and min > max:
        raise InvalidMaterialsQuery(f"min {min} is larger than max {max} for {column!r}: swap them")
    return None


def element_symbols(elements: str | Sequence[str]) -> list[str]:
    """Sorted unique symbols from "Fe-O", "Fe,O", ["fe", "oxygen"], ...; UnknownElement for anything else."""
    items = _SPLIT.split(elements) if isinstance(elements, str) else list(elements)
    symbols = {element_symbol(item) for item in items if str(item).strip()}
    if not symbols:
        raise InvalidMaterialsQuery("no elements given: pass symbols such as ['Fe', 'O'] or a chemsys like 'Fe-O'")
    return sorted(symbols)


def element_symbol(text: str) -> str:
    """'fe', 'FE', 'Fe' or 'iron' -> 'Fe'."""
    raw = str(text).strip()
    symbol = raw.capitalize()
    if Element.is_valid_symbol(symbol) and symbol in _names().values():
        return symbol
    by_name = _names().get(raw.lower())
    if by_name:
        return by_name
    guesses = difflib.get_close_matches(raw.lower(), list(_names()), n=2, cutoff=0.7)
    raise UnknownElement(raw, [f"{_names()[g]} ({g})" for g in guesses])


@cache
def _names() -> dict[str, str]:
    """Lower-case English name -> symbol of every real element (pymatgen's table; no dummy species)."""
    return {e.long_name.lower(): e.symbol for e in Element}
