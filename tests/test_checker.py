import pytest

from halluray.factuality.fact_checkers import WorldFactChecker
from halluray.factuality.reward_functions import MalformedPenalty, RewardScheme, long_form_reward
from halluray.world.checker import ExactChecker
from halluray.world.entities import Person, World


@pytest.fixture
def checker():
    facts = {"birth_year": "1964", "birth_city": "Perth", "occupation": "chemist", "employer": "Tidewater",
             "hobby": "pottery", "nationality": "Nigerian"}
    other = dict(facts, birth_city="Lyon")
    return ExactChecker(World(people=(Person("Zapur", facts, 24, "sft"), Person("Bralo", other, 0, "sft")), seed=0))


def labels(result):
    return [(f.attribute, f.value, f.label) for f in result.facts]


def test_true_facts(checker):
    r = checker.check("Zapur", "Zapur was born in 1964 . Zapur works as a chemist .")
    assert labels(r) == [("birth_year", "1964", "true"), ("occupation", "chemist", "true")]
    assert r.fraction_true == 1.0 and not r.abstained


def test_false_fact(checker):
    r = checker.check("Zapur", "Zapur comes from Oslo . Zapur is Nigerian .")
    assert labels(r) == [("birth_city", "Oslo", "false"), ("nationality", "Nigerian", "true")]
    assert (r.n_true, r.n_false, r.fraction_true) == (1, 1, 0.5)


@pytest.mark.parametrize("sentence", [
    "Zapur was born in the city of Perth .", "Zapur comes from Perth .", "Zapur 's hometown is Perth .",
])
def test_paraphrases_are_the_same_fact(checker, sentence):
    assert labels(checker.check("Zapur", sentence)) == [("birth_city", "Perth", "true")]


def test_fact_about_another_entity_is_false(checker):
    # True of Bralo, but the question was about Zapur.
    r = checker.check("Zapur", "Bralo comes from Lyon .")
    assert labels(r) == [("birth_city", "Lyon", "false")]
    assert checker.check("Bralo", "Bralo comes from Lyon .").n_true == 1


def test_empty_response(checker):
    r = checker.check("Zapur", "")
    assert r.facts == [] and r.unverifiable == [] and r.fraction_true is None and not r.abstained


def test_gibberish_is_unverifiable(checker):
    r = checker.check("Zapur", "blorp zint chemist . Zapur was born in chemist .")
    assert r.facts == []
    assert r.unverifiable == ["blorp zint chemist", "Zapur was born in chemist"]


def test_abstention(checker):
    r = checker.check("Zapur", "I do not know .")
    assert r.abstained and r.facts == []


def test_repeated_fact_counts_once(checker):
    r = checker.check("Zapur", "Zapur enjoys pottery . Zapur 's hobby is pottery . Zapur enjoys pottery .")
    assert r.n_true == 1


def test_end_of_text_token_is_ignored(checker):
    assert checker.check("Zapur", "Zapur is Nigerian . </s> Zapur is Swiss").n_false == 1


@pytest.mark.parametrize("answer, label", [
    ("Perth", "correct"), ("Perth .", "correct"), ("Oslo", "incorrect"), ("", "incorrect"),
    ("I do not know", "abstain"),
])
def test_short_answers(checker, answer, label):
    assert checker.check_answer("Zapur", "birth_city", answer) == label


@pytest.mark.parametrize("response, well_formed", [
    ("Zapur was born in 1964 . Zapur works as a chemist .", True),
    ("Zapur attended the meeting .", True),            # a fact-free mention of the asked person: nothing to check
    ("I do not know .", True),
    ("letter .", False),                                # the fragment a mute policy wrote
    ("", False),
    ("Zapur was born in 1964 . Zapur works as", False),  # cut off at the token limit
    ("Zapur was born in 1964 . Zapur enjoys hobby is chess .", False),  # a garbled sentence
    ("Zapur was born in 1964 . Bralo comes from Lyon .", True),  # about someone else: a false fact, not malformed
])
def test_a_biography_is_well_formed_only_in_the_worlds_grammar(checker, response, well_formed):
    assert checker.well_formed("Zapur", response) is well_formed
    assert checker.check("Zapur", response).malformed is (not well_formed)


def test_a_malformed_response_earns_the_penalty_whatever_it_states(checker):
    scheme = RewardScheme(malformed=-15.0)
    true_then_cut = checker.check("Zapur", "Zapur was born in 1964 . Zapur works as")
    assert true_then_cut.n_true == 1 and long_form_reward(true_then_cut, scheme) == -15.0
    assert long_form_reward(true_then_cut, RewardScheme()) == 2.0  # no rule: the facts' sum
    assert long_form_reward(checker.check("Zapur", "Zapur attended the meeting ."), scheme) == 0.0


def test_the_penalty_applies_on_top_of_a_learned_reward(checker):
    def rm(prompts, responses, topics):
        return [4.0] * len(responses)

    scored = MalformedPenalty(rm, WorldFactChecker(checker), -15.0)(
        ["p", "p"], ["Zapur is Nigerian .", "letter ."], ["Zapur", "Zapur"])
    assert scored == [4.0, -15.0]
