import collections
import re

import pytest

from halluray.config import build_config
from halluray.config.base import ConfigError
from halluray.world.build import build_corpus, make_world, prompt_records
from halluray.world.checker import ExactChecker
from halluray.world.corpus import (
    generator_corpus,
    mcq_items,
    qa_items,
    reference_attributes,
    reference_bio,
    replay_documents,
)
from halluray.world.entities import SPLITS, World
from halluray.world.source import IndependentSource
from halluray.world.templates import MENTION_TEMPLATES
from halluray.world.vocab import ATTRIBUTES


def _cfg(seed=0, **kw):
    return build_config({}, [f"seed={seed}", "world.num_people=60"] + [f"world.{k}={v}" for k, v in kw.items()])


def test_same_seed_same_world_and_corpus():
    a, b = _cfg(3), _cfg(3)
    assert make_world(a).to_json() == make_world(b).to_json()
    assert build_corpus(a, make_world(a)) == build_corpus(b, make_world(b))


def test_different_seed_different_world():
    assert make_world(_cfg(1)).to_json() != make_world(_cfg(2)).to_json()


def test_world_json_round_trip(world):
    assert World.from_json(world.to_json()) == world


def test_names_are_unique_single_words(world):
    names = [p.name for p in world.people]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Z][a-z]+", n) for n in names)


def test_splits_are_stratified_by_frequency(world):
    counts = collections.Counter((p.split, p.frequency) for p in world.people)
    for split in SPLITS:
        assert {f for (s, f) in counts if s == split} == {0, 2, 6, 24}


def test_corpus_states_facts_exactly_as_often_as_the_frequency_says(world):
    cfg = _cfg()
    corpus = build_corpus(cfg, world)
    checker = ExactChecker(world)
    for person in world.people[:20]:
        docs = [d for d in corpus if re.search(rf"\b{person.name}\b", d)]
        mentions = [d for d in docs if d in {t.format(name=person.name) for t in MENTION_TEMPLATES}]
        # Everyone is mentioned, even people whose facts never appear.
        assert len(mentions) == cfg.world.name_mentions
        fact_docs = [d for d in docs if d not in mentions]
        assert len(fact_docs) == person.frequency
        for doc in fact_docs:
            if doc.startswith("Q :"):
                answers = re.findall(r"A : (\S+) \.", doc)
                assert answers and set(answers) <= set(person.facts.values())
            else:
                assert checker.check(person.name, doc).n_true == len(ATTRIBUTES)
                assert checker.check(person.name, doc).n_false == 0


def test_reference_bio_states_every_fact_truly(world):
    checker = ExactChecker(world)
    for person in world.people[:10]:
        result = checker.check(person.name, reference_bio(person))
        assert result.n_true == len(ATTRIBUTES) and result.n_false == 0


def test_shorter_reference_bios_state_a_fixed_subset_of_facts_truly_and_stay_well_formed(world):
    checker = ExactChecker(world)
    records = prompt_records(world, "sft", (0, 6))
    counts = collections.Counter()
    for record in records:
        result = checker.check(record["name"], record["target"])
        assert result.n_false == 0 and not result.malformed and not result.abstained
        counts[result.n_true] += 1
    assert set(counts) == set(range(7))  # every length from a fact-free mention to the whole bio occurs
    assert prompt_records(world, "sft", (0, 6)) == records  # the same bios every time the world is read
    assert prompt_records(world, "sft", (6, 6)) == prompt_records(world, "sft")


def test_reference_bio_keeps_the_canonical_order_of_the_facts_it_states(world):
    person = world.people[0]
    picked = reference_attributes(person, (2, 2), seed=5)
    assert len(picked) == 2 and list(picked) == [a for a in ATTRIBUTES if a in picked]
    assert reference_bio(person, ()) == MENTION_TEMPLATES[0].format(name=person.name)


def test_sft_replays_seeded_pretraining_documents_but_no_prompted_bio():
    cfg = _cfg()
    corpus = build_corpus(cfg, make_world(cfg))
    replayed = replay_documents(corpus, 50, seed=0)
    assert len(replayed) == 50 and set(replayed) <= set(corpus)
    assert not any(d.startswith("Write a biography for") for d in replayed)
    assert any(d.startswith("Write a biography for") for d in corpus)
    assert replay_documents(corpus, 50, seed=0) == replayed != replay_documents(corpus, 50, seed=1)
    assert len(replay_documents(corpus[:5], 50, seed=0)) <= 5


def test_sft_replay_on_real_data_is_a_config_error():
    with pytest.raises(ConfigError, match="sft.replay_documents"):
        build_config({}, ["sft.replay_documents=10", "data.dataset=wikibios"])


def test_bio_facts_outside_the_six_attributes_is_a_config_error():
    with pytest.raises(ConfigError, match="bio_facts"):
        _cfg(bio_facts="[3,7]")


def test_qa_and_mcq_items_are_about_true_facts(world):
    people = list(world.people)
    for item in qa_items(people, 0):
        assert world.person(item.name).facts[item.attribute] == item.answer
    for item in mcq_items(people, 0):
        assert len(set(item.choices)) == 4
        assert item.choices[item.answer_index] == world.person(item.name).facts[item.attribute]
        assert item.prompt.endswith("A :")


def test_independent_source_accuracy_and_determinism(world):
    checker = ExactChecker(world)
    names = [p.name for p in world.people]
    perfect, wrong = IndependentSource(world, 1.0, 0), IndependentSource(world, 0.0, 0)
    assert all(checker.check(n, perfect.respond(n)).n_false == 0 for n in names)
    assert all(checker.check(n, wrong.respond(n)).n_true == 0 for n in names)
    half = IndependentSource(world, 0.5, 0)
    true = sum(checker.check(n, half.respond(n)).n_true for n in names)
    assert 0.35 < true / (len(names) * len(ATTRIBUTES)) < 0.65
    assert half.respond(names[0]) == IndependentSource(world, 0.5, 0).respond(names[0])
    assert half.respond(names[0], sample=0) != half.respond(names[0], sample=1)


def test_independent_source_knows_familiar_people_better_when_accuracy_is_given_per_tier(world):
    checker = ExactChecker(world)
    tiers = sorted({p.frequency for p in world.people})
    source = IndependentSource(world, dict(zip(tiers, (0.0, 1.0, 1.0, 1.0))), 0)
    for person in world.people:
        result = checker.check(person.name, source.respond(person.name))
        assert (result.n_true, result.n_false) == ((0, len(ATTRIBUTES)) if person.frequency == tiers[0]
                                                   else (len(ATTRIBUTES), 0))


def test_the_generator_reads_its_own_draw_of_true_biographies_more_of_them_for_the_familiar(world):
    people = world.split("rm")
    documents = {f: 2 * f + 1 for f in {p.frequency for p in world.people}}
    docs = generator_corpus(people, documents, seed=5)
    assert docs == generator_corpus(people, documents, seed=5) and docs != generator_corpus(people, documents, seed=6)
    checker = ExactChecker(world)
    for p in people:
        mine = [d for d in docs if d.startswith(f"Write a biography for {p.name} .")]
        assert len(mine) == documents[p.frequency]
        bios = [d.removeprefix(f"Write a biography for {p.name} . ") for d in mine]
        assert all(checker.check(p.name, b).n_true == len(ATTRIBUTES) and checker.well_formed(p.name, b) for b in bios)


def test_the_generator_documents_default_to_twice_the_pretraining_count_at_least_four():
    cfg = build_config({"world": {"fact_frequencies": [0, 2, 6, 24]}})
    assert cfg.generator_documents_by_frequency() == {0: 4, 2: 4, 6: 12, 24: 48}
    cfg = build_config({"world": {"fact_frequencies": [0, 24], "frequency_weights": [1, 1]},
                        "reward_data": {"generator_documents": [3, 5]}})
    assert cfg.generator_documents_by_frequency() == {0: 3, 24: 5}
