"""The rule user's feedback on real catalog titles, and the LLM user rephrasing it with a scripted model."""

from __future__ import annotations

import dataclasses

from agentdistill.benchmarks.suites.rec_sessions import RecSession
from agentdistill.benchmarks.suites.rec_users import LLMUser, RuleUser
from agentdistill.memory.catalog import Catalog, CatalogItem, CatalogQuery
from agentdistill.models.scripted import ScriptedModel

TARGET = "s1829"  # Unsolved Mysteries (TV Show, 2020, Crime TV Shows/Docuseries, TV-MA)


def session(catalog: Catalog, reveal: tuple[str, ...], **hidden: object) -> RecSession:
    target = catalog.get(TARGET)
    query = CatalogQuery(types=(target.type,), genres=("Crime TV Shows",), year_min=2019, **hidden)  # type: ignore[arg-type]
    assert not query.violations(target)
    return RecSession(f"rec-900-{TARGET}", TARGET, query, reveal, len(catalog.filter(query)))


def pick(catalog: Catalog, query: CatalogQuery, n: int = 5, avoid: str = TARGET) -> list[CatalogItem]:
    found = [i for i in catalog.filter(query) if i.id != avoid][:n]
    assert len(found) == n, query
    return found


def test_the_opening_states_one_or_two_hidden_constraints_in_varied_words(catalog: Catalog) -> None:
    texts, counts = set(), set()
    for seed in range(8):
        s = session(catalog, ("genres", "type", "years"))
        opening = RuleUser(catalog, seed=seed).start(s).opening()
        stated = opening.stated.to_dict()
        assert opening.act == "open" and not opening.done
        assert stated in ({"genres": ["Crime TV Shows"]}, {"genres": ["Crime TV Shows"], "types": ["TV Show"]})
        assert "Crime TV Shows" in opening.text and "2019" not in opening.text  # years come later
        texts.add(opening.text)
        counts.add(len(stated))
    assert len(texts) >= 3 and counts == {1, 2}


def test_the_user_accepts_only_when_the_target_is_in_the_top_k(catalog: Catalog) -> None:
    s = session(catalog, ("type", "genres", "years"))
    target = catalog.get(TARGET)
    others = pick(catalog, CatalogQuery(types=("TV Show",)), 5)
    dialogue = RuleUser(catalog, k=5).start(s)
    dialogue.opening()
    late = dialogue.react([*others, target], answer="", clarification=False)  # sixth: outside k
    assert not late.done and late.act != "accept"
    accepted = dialogue.react([others[0], target], answer="", clarification=False)
    assert accepted.done and accepted.act == "accept" and target.title in accepted.text


def test_feedback_points_at_the_constraint_the_picks_break_most(catalog: Catalog) -> None:
    s = session(catalog, ("type", "genres", "years"))
    dialogue = RuleUser(catalog).start(s)
    dialogue.opening()
    movies = pick(catalog, CatalogQuery(types=("Movie",), year_min=2019))
    wrong_type = dialogue.react(movies, answer="", clarification=False)
    assert wrong_type.act == "correct" and wrong_type.text == "Only TV shows, please."
    assert wrong_type.stated.types == ("TV Show",)
    old = pick(catalog, CatalogQuery(types=("TV Show",), genres=("Crime TV Shows",), year_max=2015))
    older = dialogue.react(old, answer="", clarification=False)
    assert older.text == "Newer ones, please: released in 2019 or later." and older.stated.year_min == 2019


def test_a_stated_genre_broken_again_becomes_an_exclusion_the_target_survives(catalog: Catalog) -> None:
    s = session(catalog, ("genres", "type", "years"))
    dialogue = RuleUser(catalog, seed=1).start(s)
    opening = dialogue.opening()
    assert "genres" in opening.stated.to_dict()
    comedies = pick(catalog, CatalogQuery(types=("TV Show",), genres=("TV Comedies",), year_min=2019,
                                          exclude_genres=("Crime TV Shows",)))  # fmt: skip
    reply = dialogue.react(comedies, answer="", clarification=False)
    assert reply.act == "exclude" and reply.stated.exclude_genres
    [excluded] = reply.stated.exclude_genres
    assert excluded in reply.text and excluded not in catalog.get(TARGET).genres
    assert not reply.stated.violations(catalog.get(TARGET))  # what the user says never rules the target out


def test_good_picks_without_the_target_bring_the_next_constraint_then_the_vibe(catalog: Catalog) -> None:
    s = session(catalog, ("type", "genres", "years"))
    dialogue = RuleUser(catalog, seed=2).start(s)
    dialogue.opening()
    fitting = pick(catalog, s.hidden, 3)
    acts = []
    for _ in range(4):
        utterance = dialogue.react(fitting, answer="", clarification=False)
        acts.append(utterance.act)
    assert acts[-1] == "vibe" and "reveal" in acts and utterance.stated == s.hidden
    words = utterance.text.lower()
    assert sum(w in catalog.get(TARGET).description.lower() for w in words.replace("?", " ").split()) >= 3
    assert "unsolved" not in words  # the vibe describes the story, it does not name the title


def test_a_clarification_question_gets_the_wishes_restated(catalog: Catalog) -> None:
    s = session(catalog, ("type", "genres", "years"), ratings=("TV-MA",))
    dialogue = RuleUser(catalog, seed=0).start(s)
    opening = dialogue.opening()
    reply = dialogue.react([], answer="Did you want horror or not?", clarification=True)
    assert reply.act == "restate" and reply.stated == opening.stated
    assert "TV show" in reply.text or "series" in reply.text


def test_length_and_rating_corrections(catalog: Catalog) -> None:
    movie = catalog.filter(CatalogQuery(types=("Movie",), genres=("Dramas",), duration_max=95, ratings=("R",)))[0]
    hidden = CatalogQuery(types=("Movie",), genres=("Dramas",), duration_max=100, ratings=("R",))
    s = RecSession(f"rec-901-{movie.id}", movie.id, hidden, ("type", "genres", "length", "rating"), 0)
    dialogue = RuleUser(catalog).start(s)
    dialogue.opening()
    long_ones = pick(catalog, dataclasses.replace(hidden, duration_max=None, duration_min=130), avoid=movie.id)
    shorter = dialogue.react(long_ones, answer="", clarification=False)
    assert shorter.text == "Shorter, please: under 100 minutes." and shorter.stated.duration_max == 100
    tame = pick(catalog, dataclasses.replace(hidden, ratings=("PG-13",)), 2, avoid=movie.id)
    rated = dialogue.react(tame, answer="", clarification=False)
    assert rated.text == "I'd like something rated R." and rated.stated.ratings == ("R",)


def test_the_llm_user_rephrases_the_rule_users_content_and_sees_no_target(catalog: Catalog) -> None:
    s = session(catalog, ("type", "genres", "years"))
    model = ScriptedModel(['"Got any crime series? Newer stuff."', "", "older please"], spec="scripted:user")
    dialogue = LLMUser(model, "a terse viewer", catalog=catalog).start(s)
    opening = dialogue.opening()
    assert opening.text == "Got any crime series? Newer stuff." and opening.act == "open"
    prompt = "\n".join(m["content"] for m in model.history[0])
    assert "a terse viewer" in prompt and "Crime TV Shows" in prompt and "year_min: 2019" in prompt
    assert catalog.get(TARGET).title not in prompt and TARGET not in prompt
    shown = pick(catalog, CatalogQuery(types=("Movie",)), 3)
    fallback = dialogue.react(shown, answer="", clarification=False)  # empty reply: the rule text stands
    assert fallback.text == "Only TV shows, please." and fallback.stated.types == ("TV Show",)
    assert all(item.title in "\n".join(m["content"] for m in model.history[1]) for item in shown)
    accepted = dialogue.react([catalog.get(TARGET)], answer="", clarification=False)
    assert accepted.done and model.remaining == 1  # accepting needs no words from the model
    assert dialogue.prompt_tokens > 0
