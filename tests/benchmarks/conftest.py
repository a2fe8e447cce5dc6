"""Shared by the recommendation benchmark tests: the packaged catalog (hashing embedder) and a scripted recbot model.

The scripted model reads the rule user's templates the way a perfect parser would, writes the default plan
and a one-line reply, so the real recbot graph can be driven through the simulator deterministically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

import pytest

from agentdistill.memory.catalog import Catalog, default_catalog
from agentdistill.memory.embedders import HashingEmbedder
from agentdistill.models import Message
from agentdistill.models.scripted import ScriptedModel

PLAN = json.dumps({"steps": [{"tool": "filter"}, {"tool": "retrieve"}, {"tool": "rank"}, {"tool": "explain"}]})
HARD = ["type", "genres", "exclude_genres", "year_min", "year_max", "duration_min", "duration_max", "seasons_max",
        "countries", "ratings"]  # fmt: skip


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The packaged Netflix subset, built once for the whole test session with the hashing embedder."""
    return default_catalog(tmp_path_factory.mktemp("rec-home"), HashingEmbedder(64))


def parse_rule_message(message: str, previous: dict, genres: Sequence[str]) -> dict:
    """What a perfect parser makes of a rule user's message (the templates in rec_users)."""
    pref = {k: v for k, v in previous.items() if v not in (None, [], "")}
    text = message
    if re.search(r"\b(a movie|a film|movies)\b", text):
        pref["type"] = "Movie"
    if re.search(r"\b(a TV show|a series|TV shows)\b", text):
        pref["type"] = "TV Show"
    excluded = re.search(r"(?:No more|no|Not) (.+?)(?:, please| this time| –)", text)
    if excluded and excluded.group(1) in genres:
        pref["exclude_genres"] = [*pref.get("exclude_genres", []), excluded.group(1)]
    wanted = re.search(r"\bin ((?:[^,.?]+?)(?: or [^,.?]+?)*)(?=[,.?]|$)", text)
    if wanted and all(g in genres for g in wanted.group(1).split(" or ")):
        pref["genres"] = wanted.group(1).split(" or ")
    if m := re.search(r"between (\d{4}) and (\d{4})", text):
        pref["year_min"], pref["year_max"] = int(m.group(1)), int(m.group(2))
    if m := re.search(r"in (\d{4}) or later", text):
        pref["year_min"] = int(m.group(1))
    if m := re.search(r"in (\d{4}) or earlier", text):
        pref["year_max"] = int(m.group(1))
    if m := re.search(r"(?:from|made in) (?:the )?([A-Z][A-Za-z ]+?)(?=[,.?]|$| or )", text):
        pref["countries"] = [m.group(1)]
    if m := re.search(r"under (\d+) minutes", text):
        pref["duration_max"] = int(m.group(1))
    if m := re.search(r"at least (\d+) minutes", text):
        pref["duration_min"] = int(m.group(1))
    if m := re.search(r"at most (\d+)(?: seasons)?\.?$|at most (\d+) seasons", text):
        pref["seasons_max"] = int(m.group(1) or m.group(2))
    if "just one season" in text:
        pref["seasons_max"] = 1
    if m := re.search(r"rated ([A-Z0-9-]+(?: or [A-Z0-9-]+)*)", text):
        pref["ratings"] = m.group(1).split(" or ")
    if m := re.search(r"(?:about|story with|Think) (.+?)[.?]$", text):
        pref["vibe"] = m.group(1)
    pref["hard"] = HARD
    return pref


def scripted_recbot(catalog: Catalog, *, planner: str = PLAN) -> ScriptedModel:
    """A model answering recbot's three roles: the perfect parser, a fixed plan, a short reply."""
    genres = catalog.vocabulary().genres

    def reply(messages: Sequence[Message]) -> str:
        prompt = messages[0]["content"]
        if prompt.startswith("Update the user's"):
            current = json.loads(re.findall(r"^Current preference: (.*)$", prompt, re.M)[-1])
            message = re.findall(r"^User: (.*)$", prompt, re.M)[-1]
            return json.dumps(parse_rule_message(message, current, genres))
        if prompt.startswith("Plan a catalog search"):
            return planner
        return "Here are a few picks for you."

    return ScriptedModel([reply], repeat_last=True, spec="scripted:recbot")


@pytest.fixture
def recbot_model(catalog: Catalog) -> Callable[..., ScriptedModel]:
    return lambda **kw: scripted_recbot(catalog, **kw)
