"""Simulated users for recommendation sessions: a deterministic rule-based one and an LLM that rephrases it.

The rule user decides *what* is said each turn: the opening states one or two hidden constraints; later
turns accept when the target is among the recommendations, otherwise point at the constraint the
recommendations break most ("no more Comedies", "older ones, released in 2004 or earlier"), else reveal the
next hidden constraint, else describe the target's vibe from its description. Everything said is also kept
as a structured query (`Utterance.stated`), which is what parse accuracy compares the agent's parse with.

The LLM user keeps those decisions (so its sessions are scored on the same facts) and only rewrites the
wording, in a persona's voice. It sees the hidden constraints, the recommendations and the message to
rephrase, never the target itself.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentdistill.benchmarks.suites.rec_sessions import GROUPS, RecSession
from agentdistill.memory.catalog import Catalog, CatalogItem, CatalogQuery
from agentdistill.models.base import ChatModel, Message

PERSONAS = (
    "a busy parent who types short, informal messages",
    "a film buff who is precise and a little impatient",
    "a student who writes casually, in lower case, with the odd typo",
    "a retired teacher who writes complete, polite sentences",
)
_STOPWORDS = frozenset(
    "about after again against along among their there these those which while where when with within without "
    "would could should being other others another every from into over under until upon what this that them "
    "they have has had been were will your yours ours whose himself herself itself becomes become finds find "
    "must takes take gets get makes make sets set life lives world years year young woman women after follows "
    "original story stories series documentary film movie special comedian comic special share shares".split()
)
_THE_COUNTRIES = frozenset({"Netherlands", "Philippines", "Czech Republic", "Dominican Republic", "Soviet Union"})
_TYPE_WORDS = {"Movie": ("a movie", "a film"), "TV Show": ("a TV show", "a series")}
_PLURAL = {"Movie": "movies", "TV Show": "TV shows"}


@dataclass(frozen=True)
class Utterance:
    """One user message, with everything the user has asked for so far as a structured query."""

    text: str  # what is sent to the agent
    act: str  # open | accept | correct | exclude | reveal | vibe | restate
    stated: CatalogQuery  # cumulative: what parse accuracy is measured against
    done: bool = False  # the user accepts and leaves; nothing more is sent


class Dialogue(Protocol):
    """One user's side of one session."""

    def opening(self) -> Utterance: ...

    def react(self, recommended: Sequence[CatalogItem | None], *, answer: str, clarification: bool) -> Utterance: ...


class SimulatedUser(Protocol):
    def start(self, session: RecSession) -> Dialogue: ...


class RuleUser:
    """Deterministic: the same session, recommendations and seed always give the same messages."""

    def __init__(self, catalog: Catalog, *, k: int = 5, seed: int = 0) -> None:
        self.catalog = catalog
        self.k = k  # the target counts as found only among the first k recommendations
        self.seed = seed  # varies the templates; the decisions do not depend on it

    def start(self, session: RecSession) -> RuleDialogue:
        return RuleDialogue(session, self.catalog.get(session.target_id), k=self.k, seed=self.seed)


class RuleDialogue:
    def __init__(self, session: RecSession, target: CatalogItem, *, k: int, seed: int) -> None:
        self.session = session
        self.target = target
        self.k = k
        self.rng = random.Random(f"{seed}:{session.id}")
        self.stated: dict[str, Any] = {}
        self.vibes = 0

    # -- the two moves ------------------------------------------------------------------------------------
    def opening(self) -> Utterance:
        first = list(self.session.reveal[: self.rng.choice((1, 2))])
        for group in first:
            self._state(group)
        kind = next((self._type_phrase() for g in first if g == "type"), "something")
        clauses = [self._clause(g) for g in first if g != "type"]
        what = " ".join([kind, ", ".join(clauses)]).strip()
        starter = self.rng.choice(
            ("I'm looking for {}.", "Can you recommend {}?", "Hi! I'd like to watch {}.", "Any suggestions for {}?")
        )
        return self._say(starter.format(what), "open")

    def react(self, recommended: Sequence[CatalogItem | None], *, answer: str, clarification: bool) -> Utterance:
        shown = [item for item in recommended[: self.k] if item is not None]
        if any(item.id == self.target.id for item in shown):
            return self._say(f"Great, {self.target.title} is what I wanted. Thanks!", "accept", done=True)
        if clarification:
            return self._say(f"Sorry if I was unclear: {self._restatement()}", "restate")
        group = self._most_violated(shown)
        if group is not None:
            return self._correct(group, [i for i in shown if self.session.group_query(group).violations(i)])
        pending = [g for g in self.session.reveal if not self._stated_all(g)]
        if pending:
            return self._reveal(pending[0])
        return self._vibe()

    # -- decisions -----------------------------------------------------------------------------------------
    def _most_violated(self, shown: Sequence[CatalogItem]) -> str | None:
        counts = Counter(
            g for item in shown for g in self.session.reveal if self.session.group_query(g).violations(item)
        )
        if not counts:
            return None
        return max(self.session.reveal, key=lambda g: (counts[g], -self.session.reveal.index(g)))

    def _correct(self, group: str, wrong: Sequence[CatalogItem]) -> Utterance:
        hidden = self.session.hidden
        if group == "genres":
            bad = self._unwanted_genre(wrong)
            if self._stated_all("genres") and bad is not None:
                self.stated["exclude_genres"] = (*self.stated.get("exclude_genres", ()), bad)
                pick = self.rng.choice(("No more {}, please.", "Please, no {} this time.", "Not {} – something else."))
                return self._say(pick.format(bad), "exclude")
            self._state("genres")
            return self._say(f"I'd rather have something {self._clause('genres')}.", "correct")
        if group == "years":
            newer = sum(1 for i in wrong if hidden.year_max is not None and i.release_year > hidden.year_max)
            if newer * 2 >= len(wrong) and hidden.year_max is not None:
                self.stated["year_max"] = hidden.year_max
                return self._say(f"Older ones, please: released in {hidden.year_max} or earlier.", "correct")
            self.stated["year_min"] = hidden.year_min
            return self._say(f"Newer ones, please: released in {hidden.year_min} or later.", "correct")
        if group == "length":
            return self._correct_length()
        self._state(group)
        if group == "type":
            return self._say(f"Only {_PLURAL[self.target.type]}, please.", "correct")
        return self._say(f"I'd like something {self._clause(group)}.", "correct")

    def _correct_length(self) -> Utterance:
        hidden = self.session.hidden
        self._state("length")
        if hidden.duration_max is not None:
            return self._say(f"Shorter, please: under {hidden.duration_max} minutes.", "correct")
        if hidden.duration_min is not None:
            return self._say(f"Longer ones, please: at least {hidden.duration_min} minutes.", "correct")
        return self._say(f"Fewer seasons, please: at most {hidden.seasons_max}.", "correct")

    def _unwanted_genre(self, wrong: Sequence[CatalogItem]) -> str | None:
        """The genre most of the wrong recommendations share that the target lacks (safe to exclude)."""
        keep = {g.lower() for g in self.target.genres}
        already = {g.lower() for g in self.stated.get("exclude_genres", ())}
        counts = Counter(g for i in wrong for g in i.genres if g.lower() not in keep | already)
        return min(counts, key=lambda g: (-counts[g], g)) if counts else None

    def _reveal(self, group: str) -> Utterance:
        self._state(group)
        if group == "type":
            return self._say(f"Oh, and it should be {self._type_phrase()}.", "reveal")
        pick = self.rng.choice(("Also, I'd like something {}.", "Oh, and ideally {}.", "One more thing: {}."))
        return self._say(pick.format(self._clause(group)), "reveal")

    def _vibe(self) -> Utterance:
        self.vibes += 1
        words = _keywords(self.target.description, 3 + 2 * (self.vibes - 1))
        if not words:
            return self._say(f"Sorry if I was unclear: {self._restatement()}", "restate")
        listed = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else words[0]
        pick = self.rng.choice(("Maybe something about {}?", "I'm in the mood for a story with {}.", "Think {}."))
        return self._say(pick.format(listed), "vibe")

    # -- wording -------------------------------------------------------------------------------------------
    def _state(self, group: str) -> None:
        for name in GROUPS[group]:
            value = getattr(self.session.hidden, name)
            if value not in ((), None):
                self.stated[name] = value

    def _stated_all(self, group: str) -> bool:
        return all(n in self.stated for n in GROUPS[group] if getattr(self.session.hidden, n) not in ((), None))

    def _type_phrase(self) -> str:
        return self.rng.choice(_TYPE_WORDS[self.target.type])

    def _clause(self, group: str) -> str:
        h = self.session.hidden
        if group == "type":
            return self._type_phrase()
        if group == "genres":
            return "in " + " or ".join(h.genres)
        if group == "years":
            if h.year_min is not None and h.year_max is not None:
                return f"released between {h.year_min} and {h.year_max}"
            if h.year_min is not None:
                return f"released in {h.year_min} or later"
            return f"released in {h.year_max} or earlier"
        if group == "country":
            return self.rng.choice(("from ", "made in ")) + " or ".join(_country(c) for c in h.countries)
        if group == "length":
            if h.duration_max is not None:
                return f"under {h.duration_max} minutes"
            if h.duration_min is not None:
                return f"at least {h.duration_min} minutes long"
            return "with just one season" if h.seasons_max == 1 else f"with at most {h.seasons_max} seasons"
        return "rated " + " or ".join(h.ratings)

    def _restatement(self) -> str:
        said = [g for g in self.session.reveal if any(n in self.stated for n in GROUPS[g])]
        kind = self._type_phrase() if "type" in said else "something"
        parts = [kind, *(self._clause(g) for g in said if g != "type")]
        text = "I want " + ", ".join(parts)
        if self.stated.get("exclude_genres"):
            text += ", and no " + " or ".join(self.stated["exclude_genres"])
        return text + "."

    def _say(self, text: str, act: str, *, done: bool = False) -> Utterance:
        return Utterance(text, act, CatalogQuery(**self.stated), done=done)


class LLMUser:
    """The rule user's decisions in an LLM's words; `persona` None picks one of PERSONAS per session."""

    def __init__(
        self,
        model: ChatModel,
        persona: str | None = None,
        *,
        catalog: Catalog,
        k: int = 5,
        seed: int = 0,
        temperature: float = 0.0,
    ) -> None:
        self.model = model  # not recorded: the user's calls are no part of the agent's trajectories
        self.persona = persona
        self.rules = RuleUser(catalog, k=k, seed=seed)
        self.temperature = temperature
        self.seed = seed

    def start(self, session: RecSession) -> LLMDialogue:
        persona = self.persona or random.Random(f"{self.seed}:{session.id}").choice(PERSONAS)
        return LLMDialogue(self.rules.start(session), self.model, persona, self.temperature)


class LLMDialogue:
    def __init__(self, rules: RuleDialogue, model: ChatModel, persona: str, temperature: float) -> None:
        self.rules = rules
        self.model = model
        self.persona = persona
        self.temperature = temperature
        self.prompt_tokens = 0  # the user's own spend, reported apart from the agent's
        self.completion_tokens = 0

    def opening(self) -> Utterance:
        return self._rephrase(self.rules.opening(), [])

    def react(self, recommended: Sequence[CatalogItem | None], *, answer: str, clarification: bool) -> Utterance:
        planned = self.rules.react(recommended, answer=answer, clarification=clarification)
        return planned if planned.done else self._rephrase(planned, [i for i in recommended if i is not None])

    def _rephrase(self, planned: Utterance, shown: Sequence[CatalogItem]) -> Utterance:
        """The planned message in the persona's words; the planned text itself when the model's is unusable."""
        messages = rephrase_prompt(self.persona, self.rules.session.hidden, shown, planned.text)
        [reply] = self.model.generate(messages, stop=["\nAssistant:", "\nRecommender:"], max_tokens=120,
                                      temperature=self.temperature)  # fmt: skip
        self.prompt_tokens += reply.usage.prompt_tokens
        self.completion_tokens += reply.usage.completion_tokens
        text = clean_reply(reply.text)
        if not text or len(text) > 400:
            return planned
        return Utterance(text, planned.act, planned.stated, done=planned.done)


def rephrase_prompt(persona: str, hidden: CatalogQuery, shown: Sequence[CatalogItem], message: str) -> list[Message]:
    """What the LLM user sees: its persona, its secret wishes, the recommendations, the message to reword."""
    wishes = ", ".join(f"{k}: {v}" for k, v in hidden.to_dict().items() if k != "exclude_ids")
    listed = "\n".join(f"- {item.summary()}" for item in shown) or "(nothing yet)"
    system = (
        f"You play {persona}, chatting with a movie and TV recommender. Rewrite the message you are given in "
        "your own words, the way that person would type it: one or two sentences. Keep every title, number, "
        "year, genre, country and rating in it exactly; add no wish it does not state. Reply with the message only."
    )
    user = (
        f"Your wishes (only say what the message says): {wishes}\n"
        f"The recommender just suggested:\n{listed}\n\nMessage to rewrite: {message}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def clean_reply(text: str) -> str:
    """The first paragraph of a model's reply without quotes or a speaker label."""
    text = text.strip().split("\n\n")[0].strip()
    text = re.sub(r"^(?:user|me|message|rewritten message)\s*:\s*", "", text, flags=re.I)
    return text.strip().strip('"“”').strip()


def _country(name: str) -> str:
    return f"the {name}" if name.startswith("United ") or name in _THE_COUNTRIES else name


def _keywords(description: str, n: int) -> list[str]:
    """The n longest distinctive lower-case words of a description, in order: its mood, not its names."""
    words = re.findall(r"(?<![A-Za-z'-])[a-z][a-z'-]{4,}", description)
    unique = [w for i, w in enumerate(words) if w not in _STOPWORDS and w not in words[:i]]
    keep = set(sorted(unique, key=lambda w: (-len(w), w))[:n])
    return [w for w in unique if w in keep]
