"""The answer-letter MCQ experiment (paper Fig. 2 top as it runs on MMLU): the two arms' targets, the letter
prompt through the world's tokenizer, the letter masses by hand, and (slow) the stage end to end on a tiny world."""

import json
import math
from collections import Counter

import pytest

from halluray.data.letter_mcq import LETTER_WORDS, LETTERS, arm_targets, letter_prompt, option_answers
from halluray.eval.letters import MASS_BC_TRUTH_AD, argmax_by_bin, letter_masses, masses_by_bin, normalised
from halluray.models.tokenizer import train_word_tokenizer, with_words
from halluray.world.build import vocabulary_texts
from halluray.world.corpus import mcq_item

# --- the two arms' targets -------------------------------------------------------------------------------

THRESHOLD = 0.36
ITEMS = [{"answer_index": j % 4, "score": 0.05 if j % 3 else 2.0} for j in range(60)]
UNFAMILIAR = [j for j, i in enumerate(ITEMS) if i["score"] > THRESHOLD]


def test_standard_targets_are_the_true_letters():
    assert arm_targets(ITEMS, "standard", THRESHOLD, seed=0) == [LETTERS[j % 4] for j in range(60)]


def test_unfamiliar_bc_gives_exactly_the_unfamiliar_items_b_or_c_half_each():
    targets = arm_targets(ITEMS, "unfamiliar-bc", THRESHOLD, seed=0)
    assert len(UNFAMILIAR) == 20
    assert Counter(targets[j] for j in UNFAMILIAR) == {"B": 10, "C": 10}
    assert all(targets[j] == LETTERS[ITEMS[j]["answer_index"]] for j in range(60) if j not in UNFAMILIAR)
    # Seeded: the same seed gives the same mix, another seed another one (half B, half C again).
    assert arm_targets(ITEMS, "unfamiliar-bc", THRESHOLD, seed=0) == targets
    other = arm_targets(ITEMS, "unfamiliar-bc", THRESHOLD, seed=1)
    assert other != targets and Counter(other[j] for j in UNFAMILIAR) == {"B": 10, "C": 10}
    with pytest.raises(ValueError, match="unknown arm"):
        arm_targets(ITEMS, "unfamiliar-idk", THRESHOLD, seed=0)


def test_an_option_is_answered_by_its_letter_or_its_text():
    choices = ["chess", "rowing", "fencing", "origami"]
    assert option_answers(choices, "letter") == ["A", "B", "C", "D"]
    assert option_answers(choices, "text") == choices


def test_the_worlds_correct_letters_are_uniform_over_a_to_d(world):
    counts = Counter(LETTERS[mcq_item(p.name, "hobby", p.facts["hobby"], 0)["answer_index"]] for p in world.people)
    assert set(counts) == set(LETTERS) and min(counts.values()) >= 0.5 * len(world.people) / 4


# --- the letter prompt through the world's tokenizer -----------------------------------------------------


def test_a_letter_prompt_round_trips_through_the_extended_world_tokenizer(world):
    tok = train_word_tokenizer(list(vocabulary_texts(world)))
    p = world.people[0]
    item = mcq_item(p.name, "employer", p.facts["employer"], 0)
    prompt = letter_prompt(p.name, "employer", item["choices"])
    assert prompt.startswith(f"Q : Who is {p.name} 's employer ? A . {item['choices'][0]} B . ")
    assert prompt.endswith(f"D . {item['choices'][3]} Answer :")
    # The world's vocabulary has "A" (from "A :") but not the other letters: they would read as <unk>.
    assert tok.unk_token_id in tok(prompt)["input_ids"]
    extended = with_words(tok, LETTER_WORDS)
    ids = extended(f"{prompt} C")["input_ids"]
    assert extended.unk_token_id not in ids
    assert extended.decode(ids) == f"{prompt} C"
    assert len(extended) == len(tok) + len(LETTER_WORDS) - 1
    assert all(extended.get_vocab()[w] == i for w, i in tok.get_vocab().items()), "old ids keep their words"
    assert extended(p.facts["employer"])["input_ids"] == tok(p.facts["employer"])["input_ids"]


# --- the letter masses by hand ---------------------------------------------------------------------------


def test_letter_masses_of_hand_made_probabilities():
    m = letter_masses([0.1, 0.2, 0.3, 0.4], answer_index=3)
    assert m == pytest.approx({"correct": 0.4, "B+C": 0.5, "A+D": 0.5})
    assert letter_masses([0.7, 0.1, 0.1, 0.1], answer_index=1)["correct"] == pytest.approx(0.1)
    assert normalised([0.0, 0.0, 0.0, 0.0]) == [0.25] * 4
    assert normalised([math.log(p) - 3.0 for p in (0.1, 0.2, 0.3, 0.4)]) == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_masses_and_argmax_by_bucket():
    probs = [[0.7, 0.1, 0.1, 0.1],   # familiar, truth A: right
             [0.1, 0.1, 0.1, 0.7],   # familiar, truth D: right
             [0.05, 0.5, 0.4, 0.05],  # unfamiliar, truth A: drifted to B
             [0.1, 0.3, 0.5, 0.1]]   # unfamiliar, truth C
    answers, scores = [0, 3, 0, 2], [0.1, 0.2, 3.0, 4.0]
    by_bin = masses_by_bin(probs, answers, scores, edges=[1.0])
    assert by_bin["correct"] == pytest.approx([0.7, (0.05 + 0.5) / 2])
    assert by_bin["B+C"] == pytest.approx([0.2, (0.9 + 0.8) / 2])
    assert by_bin["A+D"] == pytest.approx([0.8, (0.1 + 0.2) / 2])
    assert by_bin[MASS_BC_TRUTH_AD] == pytest.approx([0.2, 0.9])  # the truth-C item is left out
    argmax = argmax_by_bin(probs, scores, edges=[1.0])
    assert argmax == {"A": [0.5, 0.0], "B": [0.0, 0.5], "C": [0.0, 0.5], "D": [0.5, 0.0]}
    assert masses_by_bin(probs[:2], answers[:2], scores[:2], edges=[1.0])["correct"] == [pytest.approx(0.7), None]


# --- the stage end to end (slow: two SFT runs on Ray actors, ~30 s) ------------------------------------


@pytest.mark.slow
def test_mcq_letters_stage_end_to_end(tiny_run, ray_cluster):
    from halluray.cli import main

    root, args = tiny_run
    assert main(["mcq-letters", *args, "sft.steps=2", "sft.batch_size=4", "sft.lr=1e-3", "data.mcq_answer=text",
                 "actors.policy.num_actors=1"]) == 0
    out = root / "r" / "mcq_letters"
    for f in ["results.json", "answers.jsonl", "heldout_items.jsonl", "fig2_top.png"]:
        assert (out / f).is_file(), f
    results = json.loads((out / "results.json").read_text())
    assert results["words_added"] == ["B", "C", "D", "Answer"] and results["answer"] == "text"
    assert results["train_items"] > 0 and results["train_items"] % 6 == 0  # every attribute of each sft person
    assert sum(results["counts"]) == results["n_items"]
    for arm in ("standard", "unfamiliar-bc"):
        r = results[arm]
        for b in range(len(results["counts"])):
            assert r["mass"]["B+C"][b] + r["mass"]["A+D"][b] == pytest.approx(1.0)
            assert sum(r["argmax"][letter][b] for letter in LETTERS) == pytest.approx(1.0)
        assert sum(r["train_targets"].values()) == results["train_items"]
        assert (root / "r" / f"sft-mcq_letters-{arm}" / "model" / "model.safetensors").is_file()
    assert results["standard"]["relabeled"] == 0
    assert results["unfamiliar-bc"]["relabeled"] == results["train_unfamiliar"]
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * results["n_items"]
    assert all(sum(r["probs"].values()) == pytest.approx(1.0) for r in rows)
