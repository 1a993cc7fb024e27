"""Unfamiliarity scores on a 'model' whose answers are fixed, so every score is known by hand."""

import math
import random

import pytest

from halluray.factuality import unfamiliarity as unf
from halluray.world.checker import ExactChecker
from halluray.world.corpus import MCQItem, QAItem
from halluray.world.entities import Person, World
from halluray.world.templates import EOS

FACTS = {"birth_year": "1964", "birth_city": "Perth", "occupation": "chemist", "employer": "Tidewater",
         "hobby": "pottery", "nationality": "Nigerian"}


@pytest.fixture
def world():
    people = [Person("Zapur", FACTS, 24, "sft"), Person("Bralo", dict(FACTS, birth_city="Lyon"), 0, "eval"),
              Person("Kemi", dict(FACTS, hobby="chess"), 6, "rm"), Person("Tova", FACTS, 2, "ppo")]
    return World(people=tuple(people), seed=0)


def fixed(answers: dict[str, list[str]]):
    """A sampler that replies to each prompt with the next fixed answer for it."""
    queues = {k: list(v) for k, v in answers.items()}
    return lambda prompts: [queues[p].pop(0) for p in prompts]


def test_long_form_is_mean_false_facts_over_samples(world):
    sample_fn = fixed({
        "p-zapur": ["Zapur comes from Perth . Zapur is Nigerian .", "Zapur comes from Oslo . Zapur is Swiss ."],
        "p-bralo": ["Bralo comes from Oslo . Bralo enjoys chess . Bralo works as a pilot .", "I do not know ."],
    })
    scores = unf.long_form_scores(["Zapur", "Bralo"], ["p-zapur", "p-bralo"], sample_fn, ExactChecker(world), k=2)
    assert [s.score for s in scores] == [1.0, 1.5]  # (0 + 2) / 2 and (3 + 0) / 2
    assert scores[0].details == {"n_true": [2, 0], "n_false": [0, 2], "n_unverifiable": [0, 0]}


def test_long_form_false_fraction_pools_the_samples_facts(world):
    sample_fn = fixed({"p-zapur": ["Zapur comes from Perth . Zapur is Nigerian .", "Zapur comes from Oslo ."],
                       "p-bralo": ["I do not know .", "I do not know ."]})
    scores = unf.long_form_scores(["Zapur", "Bralo"], ["p-zapur", "p-bralo"], sample_fn, ExactChecker(world), k=2,
                                  score="false_fraction")
    assert [s.score for s in scores] == [(1 + 0.5) / (3 + 1), 0.5]  # no checkable fact: neither side


def test_short_qa_counts_incorrect_samples(world):
    items = [QAItem("Zapur", "birth_city", "Perth"), QAItem("Bralo", "birth_city", "Lyon")]
    sample_fn = fixed({"q1": ["Perth .", "Oslo . Q :", "Perth", "I do not know ."],
                       "q2": ["Oslo", "Lyon .", "Kobe", "Kobe"]})
    scores = unf.short_qa_scores(items, ["q1", "q2"], sample_fn, ExactChecker(world), k=4)
    # An abstention is not a correct answer, so it counts as incorrect for familiarity.
    assert [s.score for s in scores] == [2.0, 3.0]
    assert scores[0].details["labels"] == ["correct", "incorrect", "correct", "abstain"]


def test_mcq_score_is_nll_of_correct_choice_among_choices():
    items = [MCQItem("Zapur", "birth_city", ("Oslo", "Perth"), 1), MCQItem("Bralo", "hobby", ("chess", "golf"), 0)]
    table = {("m1", "Oslo"): -2.0, ("m1", "Perth"): -2.0, ("m2", "chess"): -0.5, ("m2", "golf"): -7.0}
    scores = unf.mcq_scores(items, ["m1", "m2"], lambda ps, cs: [table[(p, c)] for p, c in zip(ps, cs)])
    import math
    assert scores[0].score == pytest.approx(math.log(2))  # two equally likely choices
    assert scores[1].score == pytest.approx(math.log(1 + math.exp(-6.5)))
    assert scores[0].details["choice_probs"] == pytest.approx([0.5, 0.5])


def test_few_shot_prompts_use_other_people_and_end_with_the_query(world):
    pool = [p for p in world.people if p.split != "eval"]
    query = world.person("Zapur")
    prompt = unf.long_form_prompt(query, pool, 2, random.Random(0))
    assert prompt.count(EOS) == 2 and prompt.endswith("Write a biography for Zapur .")
    assert prompt.count("Zapur") == 1
    qa = unf.short_qa_prompt(QAItem("Zapur", "hobby", "pottery"), pool, 2, random.Random(0))
    assert qa.endswith("Q : What is Zapur 's hobby ? A :") and qa.count(" A :") == 3
    mcq = unf.mcq_prompt_for(MCQItem("Zapur", "hobby", ("chess", "golf", "pottery"), 2), pool, 1, random.Random(0))
    shot = mcq.split(EOS)[0]
    assert shot.split(" A : ")[1].strip() in shot.split("Choices :")[1]  # each shot's answer is among its choices


def test_answer_of_stops_at_full_stop():
    assert unf.answer_of("Perth . Q : What") == "Perth"
    assert unf.answer_of("I do not know") == "I do not know"


def test_p_gold_is_the_probability_of_the_canonical_answer_after_the_prefix():
    records = [{"prompt": "Q1?", "answer_prefix": "The capital of X is", "answers": ["Ville", "V"]},
               {"prompt": "chat turn\n", "answer_prefix": "", "answers": ["Town"]}]
    seen = []

    def logprob_fn(prompts, continuations):
        seen.extend(zip(prompts, continuations))
        return [math.log(0.25), math.log(0.5)]

    assert unf.p_gold_scores(records, logprob_fn) == pytest.approx([0.25, 0.5])
    # The answer is scored where it starts: after the prefix (a space only where the prompt has none).
    assert seen == [("Q1? The capital of X is", "Ville"), ("chat turn\n", "Town")]


def test_sampled_answer_score_counts_incorrect_samples_labeled_with_their_prefix():
    records = [{"topic": "X", "prompt": "Q?", "answer_prefix": "X's capital is", "answers": ["Ville"]},
               {"topic": "Y", "prompt": "Q2?", "answers": ["Town"]}]
    samples = iter(["Ville.", "Paris.", "I don't know.", "Town.", "Town.", "Town."])
    labeled = []

    def label_fn(record, response):
        labeled.append(response)
        return "correct" if record["answers"][0] in response else "incorrect"

    scores = unf.sampled_answer_scores(records, lambda ps: [next(samples) for _ in ps], label_fn, k=3)
    assert [s.score for s in scores] == [2.0, 0.0]
    assert labeled[:2] == ["X's capital is Ville.", "X's capital is Paris."] and labeled[3] == "Town."
