"""Citations of the materials agent: ids checked against the tool results, the supporting record cited."""

from __future__ import annotations

from agentdistill.agents.materials_cite import cite, observations
from agentdistill.models.base import assistant, system, user

LISTING = (
    "Observation: TiO2: 2 record(s), most stable first:\n"
    "- mp-2657 TiO2 | P4_2/mnm | ordering=NM | magnetization=0 μB/f.u. | band_gap=1.78 eV | stable\n"
    "- mp-390 TiO2 | I4_1/amd | ordering=NM | magnetization=0 μB/f.u. | band_gap=2.05 eV | unstable"
)
MODULI = (
    "Observation: mp-13 Fe (elastic_tensor.raw, GPa), Voigt / Reuss / Hill averages:\n"
    "bulk modulus K: 207.100 / 207.086 / 207.093 GPa\nshear modulus G: 80.1 / 70.2 / 75.15 GPa"
)
METALS = "\n".join(f"- mp-{i} X{i} | ordering=NM | band_gap=0 eV" for i in range(1, 6))


def test_an_observed_id_the_answer_names_is_its_source() -> None:
    citation = cite("1.78 eV (mp-2657)", [LISTING])
    assert citation == type(citation)("1.78 eV (mp-2657)", ("mp-2657",), ())


def test_an_id_no_tool_returned_is_taken_out_and_the_record_stating_the_value_cited() -> None:
    # what Qwen2.5-Coder-0.5B wrote for a molar mass: the id is made up
    assert cite("55.8450 (mp-558450)", ["Observation: Fe: molar mass 55.845 g/mol"]).answer == "55.8450"
    citation = cite("The band gap is 2.05 eV (mp-999)", [LISTING])
    assert citation.answer == "The band gap is 2.05 eV (mp-390)"
    assert (citation.sources, citation.unverified) == (("mp-390",), ("mp-999",))


def test_the_value_is_matched_to_the_digits_the_answer_gives() -> None:
    assert cite("1.8 eV", [LISTING]).sources == ("mp-2657",)  # 1.78 rounds to 1.8; 2.05 does not
    assert cite("1.7 eV", [LISTING]).sources == ()


def test_a_one_record_observation_supports_every_number_in_it() -> None:
    assert cite("207.093 GPa", [MODULI]).answer == "207.093 GPa (mp-13)"


def test_an_ordering_is_supported_by_the_lines_stating_it() -> None:
    assert cite("NM", [LISTING]).sources == ("mp-2657", "mp-390")


def test_too_many_records_stating_the_value_cite_none_unless_the_question_names_one() -> None:
    assert cite("0 eV", [METALS]).answer == "0 eV"
    assert cite("0 eV", [METALS], question="What is the band gap of X4 (mp-4)?").sources == ("mp-4",)


def test_observations_are_the_user_messages_after_the_task() -> None:
    messages = [system("tools"), user("Question: TiO2 band gap?"), assistant("Action: ..."), user(LISTING)]
    assert observations(messages, "TiO2 band gap?") == [LISTING]
    assert observations(messages, "not asked") == []
