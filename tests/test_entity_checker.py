"""Entity tables for long form and the closed-domain checker that grades text about them (no model needed)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from halluray.config import FactCheckerConfig
from halluray.data.entity_table import countries, fame_quartiles, read_entity_table
from halluray.errors import InputError
from halluray.factuality.entity_checker import EntityTableChecker
from halluray.factuality.fact_checkers import load_fact_checker

DATA = Path(__file__).parent / "data"
LABELS = ("true", "false", "not_checkable")


@pytest.fixture(scope="module")
def table():
    return {e.name: e for e in countries()}


@pytest.fixture(scope="module")
def checker():
    return EntityTableChecker(countries(), source="builtin:countries")


def label(checker: EntityTableChecker, topic: str, claim: str) -> str:
    return {True: "true", False: "false", None: "not_checkable"}[checker.judge(topic, claim).label]


def test_builtin_countries_have_the_attributes_geonames_supports(table):
    peru = table["Peru"]
    assert peru.attributes["capital"] == ["Lima"]
    assert peru.attributes["continent"] == ["South America"]
    assert peru.attributes["currency"] == ["Sol"]
    assert peru.attributes["languages"] == ["Spanish", "Quechua", "Aymara"]
    assert set(peru.attributes["neighbours"]) == {"Ecuador", "Chile", "Bolivia", "Brazil", "Colombia"}
    assert 25e6 < peru.attributes["population"][0] < 40e6
    assert peru.prompt == "Tell me about Peru."
    assert "Lima" in peru.reference and len(peru.reference.split(". ")) <= 3
    assert table["United States"].prompt == "Tell me about the United States."
    assert set(table["Russia"].attributes["continent"]) == {"Europe", "Asia"}
    assert "landlocked" not in peru.attributes  # geonames has no coastline


def test_builtin_table_spreads_over_fame_quartiles(table):
    quartiles = Counter(fame_quartiles(list(table.values())).values())
    assert len(table) >= 150 and all(e.fame >= 6 for e in table.values())
    assert set(quartiles) == {1, 2, 3, 4} and max(quartiles.values()) - min(quartiles.values()) <= 1


def test_user_table_loads_without_code(tmp_path):
    path = tmp_path / "planets.jsonl"
    path.write_text(json.dumps({"entity": "Mars", "attributes": {"moons": ["Phobos", "Deimos"], "radius_km": 3390},
                                "aliases": ["the Red Planet"], "fame": 2}) + "\n", encoding="utf-8")
    [mars] = read_entity_table(path)
    assert mars.attributes == {"moons": ["Phobos", "Deimos"], "radius_km": [3390.0]}
    assert mars.prompt == "Tell me about Mars." and "Phobos" in mars.reference
    assert mars.aliases == ["the Red Planet"] and mars.fame == 2.0


@pytest.mark.parametrize("line, problem", [
    ('{"entity": "Mars"}', "'attributes' must be"),
    ('{"attributes": {"moons": ["Phobos"]}}', "no 'entity'"),
    ('{"entity": "Mars", "attributes": {"moons": [null]}}', "a value is a string or a number"),
    ('{"entity": "Mars", "attributes": {"moons": "Phobos"}, "fame": "high"}', "'fame' must be"),
    ("not json", "not valid JSON"),
])
def test_bad_user_table_is_a_one_line_error_naming_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"entity": "Venus", "attributes": {"radius_km": 6052}}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_entity_table(path)
    message = str(e.value)
    assert "\n" not in message and f"{path}: line 2" in message and problem in message


def test_a_true_capital_and_a_capital_of_another_country(checker):
    assert label(checker, "Peru", "Its capital is Lima.") == "true"
    assert label(checker, "Peru", "The capital of Peru is Quito.") == "false"  # Ecuador's
    assert label(checker, "Peru", "Its capital city is Limatown.") == "false"  # a name no row has


def test_a_claim_about_another_named_country_is_checked_against_that_country(checker):
    assert label(checker, "Peru", "Brazil is bordered by Peru.") == "true"
    assert label(checker, "Peru", "Ecuador's capital is Quito.") == "true"
    assert checker.judge("Peru", "Ecuador's capital is Quito.").subject == "Ecuador"


def test_a_pronoun_refers_to_the_current_subject(checker):
    claims = checker.decompose("Sudan is a country in Africa. It borders Chad. Its capital is Khartoum.")
    assert claims[1:] == ["Sudan borders Chad.", "Sudan's capital is Khartoum."]
    assert [label(checker, "Syria", c) for c in claims] == ["true", "true", "true"]
    assert label(checker, "Peru", "It borders Chile.") == "true"


def test_negation_flips_the_label(checker):
    assert label(checker, "Peru", "Peru does not border Chile.") == "false"
    assert label(checker, "Peru", "Peru is not bordered by Mexico.") == "true"


def test_a_list_of_neighbours_is_one_claim_per_neighbour(checker):
    result = checker.check("Malawi", "Malawi is bordered by Mozambique to the east, Tanzania to the north, "
                                     "and Kenya to the west.")
    assert [(f.value, f.label) for f in result.facts] == [("Mozambique", "true"), ("Tanzania", "true"),
                                                          ("Kenya", "false")]


def test_population_within_and_outside_the_tolerance(checker):
    assert label(checker, "Peru", "Peru has a population of about 33 million.") == "true"
    assert label(checker, "Peru", "It has a population of approximately 32,000,000 people.") == "true"
    assert label(checker, "Peru", "Peru has a population of 60 million.") == "false"
    assert label(checker, "Peru", "Its population is over 50 million.") == "false"
    assert label(checker, "Peru", "Its population is over 20 million.") == "true"
    assert label(checker, "Peru", "Peru covers 496,000 square miles.") == "true"  # 1.28 million km2


def test_continents_are_checked_and_regions_below_them_are_not(checker):
    assert label(checker, "Peru", "Peru is a country in South America.") == "true"
    assert label(checker, "Peru", "Peru is an African nation.") == "false"
    assert label(checker, "Malawi", "Malawi is in West Africa.") == "not_checkable"
    assert label(checker, "Peru", "Peru is in Southeast Asia.") == "false"
    assert label(checker, "Guinea", "Guinea borders South Africa.") == "false"  # the country, not a region
    # "Central African" inside the name is not a region the claim is about
    assert label(checker, "Chad", "The Central African Republic borders Chad.") == "true"


def test_claims_outside_the_table_are_counted_not_dropped(checker):
    result = checker.check("Peru", "Peru has a warm climate. It is home to Machu Picchu. Its capital is Lima.")
    assert result.n_true == 1 and result.n_false == 0
    assert result.unverifiable == ["Peru has a warm climate.", "Peru is home to Machu Picchu."]
    assert label(checker, "Peru", "Peru is a landlocked country.") == "not_checkable"


def test_abstention_and_unfinished_responses(checker):
    assert checker.check("Peru", "I don't know.").abstained
    assert checker.check_many(["Peru"], ["Peru is a country in South"])[0].malformed


def test_loads_through_the_fact_checker_config_as_an_import_path():
    cfg = FactCheckerConfig(kind="halluray.factuality.entity_checker:EntityTableChecker.from_path",
                            options={"path": "builtin:countries"})
    loaded = load_fact_checker(cfg)
    assert isinstance(loaded, EntityTableChecker)
    assert loaded.check("Peru", "Its capital is Lima.").n_true == 1


def test_agrees_with_the_hand_labels_of_the_held_out_claims(checker):
    """Claims of SmolLM2-135M-Instruct about held-out countries, labelled by reading them before the checker ran
    on them (docs/real-model.md): agreement at least 90%, and each label mostly recovered."""
    rows = [json.loads(line) for line in (DATA / "entity_claims_heldout.jsonl").read_text().splitlines()]
    confusion = Counter((r["label"], label(checker, r["entity"], r["claim"])) for r in rows)
    per_label = {gold: (confusion[gold, gold], sum(confusion[gold, got] for got in LABELS)) for gold in LABELS}
    assert len(rows) >= 150 and {r["quartile"] for r in rows} == {1, 2, 3, 4}
    assert all(n >= 20 for _, n in per_label.values()), per_label
    assert sum(agree for agree, _ in per_label.values()) / len(rows) >= 0.90, confusion
    assert all(agree / n >= 0.85 for agree, n in per_label.values()), per_label
    assert confusion["true", "false"] == confusion["false", "true"] == 0, confusion


def test_whole_responses_get_the_hand_counted_true_and_false_claims(checker):
    """End to end (the checker's own decomposition): most held-out responses get exactly the number of true and
    false claims their hand labels have, and over all of them the totals are close."""
    rows = [json.loads(line) for line in (DATA / "entity_claims_heldout.jsonl").read_text().splitlines()]
    responses = {r["response_id"]: (r["entity"], r["response"]) for r in rows}
    hand = Counter((r["response_id"], r["label"]) for r in rows)
    results = {i: checker.check(entity, text) for i, (entity, text) in responses.items()}
    same = sum((res.n_true, res.n_false) == (hand[i, "true"], hand[i, "false"]) for i, res in results.items())
    assert same / len(results) >= 0.75, same
    for gold, count in (("true", lambda r: r.n_true), ("false", lambda r: r.n_false)):
        total = sum(hand[i, gold] for i in results)
        assert abs(sum(map(count, results.values())) - total) <= 0.15 * total, gold


def test_every_reference_text_is_one_true_claim_per_stated_value(table, checker):
    """The SFT targets' shape (what the SFT model then writes) is read claim by claim: each attribute of a
    sentence that states several is its own claim, and every value a reference states is true."""
    for entity in table.values():
        result = checker.check(entity.name, entity.reference)
        assert result.n_false == 0 and not result.unverifiable, (entity.reference, result)
        stated = {f.attribute for f in result.facts}
        assert {"continent", "population", "capital"} <= stated, entity.reference


def test_a_reference_shaped_reply_gets_a_label_per_attribute(checker):
    reply = ("Cambodia is a country in Asia with a population of about 17 million. Its capital is Yerevan, its "
             "currency is the baht and languages spoken there include Khmer and English. Its neighbours include "
             "Laos, Myanmar, Bosnia and Herzegovina.")
    facts = [(f.attribute, f.value, f.label) for f in checker.check("Cambodia", reply).facts]
    assert facts == [("continent", "Asia", "true"), ("population", "17,000,000", "true"),
                     ("capital", "Yerevan", "false"), ("currency", "baht", "false"),
                     ("languages", "Khmer", "true"), ("languages", "English", "true"),
                     ("neighbours", "Laos", "true"), ("neighbours", "Myanmar", "false"),
                     ("neighbours", "Bosnia and Herzegovina", "false")]
