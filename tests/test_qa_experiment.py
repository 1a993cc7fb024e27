"""The short-QA experiment (paper Fig. 2): bucket math by hand, and the stage end to end on a tiny world."""

import json

import pytest

from halluray.eval.qa import bin_labels, bucket_edges, distinct_value_edges, fractions_by_bin, qa_distribution

# --- bucket edges ----------------------------------------------------------------------------------------


def test_quantile_edges_are_kept_when_every_bin_is_filled():
    scores = [0, 1, 2, 3, 4, 5, 6, 7, 8]
    # quantile_edges: sorted[3] = 3, sorted[6] = 6; ties go up -> {0,1,2} {3,4,5} {6,7,8}
    assert bucket_edges(scores, 3) == ([3, 6], "quantile")


def test_ties_that_empty_a_quantile_bin_fall_back_to_distinct_value_edges():
    scores = [0, 0, 0, 0, 0, 1, 2, 12, 12, 12]
    # quantile edges are sorted[3] = 0 and sorted[6] = 2: bin 0 (< 0) would be empty.
    # distinct values 0, 1, 2, 12 have 0, 5, 6, 7 scores below them. Edge 1 aims at 10/3 = 3.33 below:
    # candidates 1 (|5 - 3.33| = 1.67) or 2 (2.67) -> 1. Edge 2 aims at 6.67: 2 (0.67) or 12 (0.33) -> 12.
    assert bucket_edges(scores, 3) == ([1, 12], "distinct-values")
    assert fractions_by_bin(["correct"] * 10, scores, [1, 12])["counts"] == [5, 2, 3]


def test_collapsed_quantile_edges_fall_back():
    scores = [0, 3, 12, 12, 12, 12, 12, 12, 12]
    # quantile edges 12 and 12: the middle bin is empty. Distinct 0, 3, 12 -> one bin per value.
    assert bucket_edges(scores, 3) == ([3, 12], "distinct-values")


def test_fewer_distinct_scores_than_bins():
    assert distinct_value_edges([5, 5, 9], 3) == [9]
    assert distinct_value_edges([4, 4], 3) == []
    assert bucket_edges([4, 4], 3) == ([], "distinct-values")
    assert bin_labels([4, 4], []) == ["[4, 4]"]


def test_distinct_value_edges_leave_room_for_later_bins():
    # Distinct values 0, 1, 2, 3 have 0, 1, 2, 3 scores below them. Edge 1 aims at 9/3 = 3 below, which is
    # exactly value 3, but 3 must be kept for edge 2: edge 1 may only be 1 (2 off) or 2 (1 off) -> 2.
    scores = [0, 1, 2, 3, 3, 3, 3, 3, 3]
    assert distinct_value_edges(scores, 3) == [2, 3]
    assert fractions_by_bin(["abstain"] * 9, scores, [2, 3])["counts"] == [2, 1, 6]


def test_bin_labels():
    assert bin_labels([0, 1, 5, 12], [2, 12]) == ["[0, 2)", "[2, 12)", "[12, 12]"]


# --- fractions -------------------------------------------------------------------------------------------

ITEMS = [{"name": n, "attribute": "city"} for n in "ABCDEFGH"]
TRUTH = dict.fromkeys("ABCDEFGH", "Lyon")


def _label(name, attribute, answer):
    if answer.startswith("I do not know"):
        return "abstain"
    return "correct" if answer == TRUTH[name] else "incorrect"


def test_qa_distribution_by_hand():
    answers = ["Lyon", "Lyon", "Paris", "Lyon", "I do not know", "Paris", "I do not know", "I do not know"]
    scores = [0, 0, 1, 1, 4, 4, 12, 12]
    # quantile edges: sorted[8 // 3 = 2] = 1, sorted[16 // 3 = 5] = 4 -> bins {0,0} {1,1} {4,4,12,12}
    d = qa_distribution(ITEMS, answers, scores, _label)
    assert d["edges"] == [1, 4] and d["bin_method"] == "quantile"
    assert d["bins"] == ["[0, 1)", "[1, 4)", "[4, 12]"]
    assert d["counts"] == [2, 2, 4]
    assert d["correct"] == [1.0, 0.5, 0.0]
    assert d["incorrect"] == [0.0, 0.5, 0.25]
    assert d["abstain"] == [0.0, 0.0, 0.75]


def test_given_edges_and_empty_bins():
    d = qa_distribution(ITEMS[:3], ["Lyon", "Paris", "I do not know ."], [0, 0, 9], _label, edges=[1, 5])
    assert d["bin_method"] == "given"
    assert d["counts"] == [2, 0, 1]
    assert d["correct"] == [0.5, None, 0.0]
    assert d["incorrect"] == [0.5, None, 0.0]
    assert d["abstain"] == [0.0, None, 1.0]


def test_mismatched_lengths_and_unknown_labels_raise():
    with pytest.raises(ValueError):
        qa_distribution(ITEMS[:2], ["Lyon"], [0, 1], _label)
    with pytest.raises(ValueError, match="unknown labels"):
        fractions_by_bin(["maybe"], [0], [])


def test_a_checker_labels_abstentions():
    from halluray.config import build_config
    from halluray.world.build import make_world
    from halluray.world.checker import ExactChecker

    world = make_world(build_config({}, ["world.num_people=8"]))
    p = world.people[0]
    checker = ExactChecker(world)
    items = [{"name": p.name, "attribute": "birth_city"}] * 3
    d = qa_distribution(items, [p.facts["birth_city"], "I do not know", "nowhere"], [0, 0, 0], checker.check_answer)
    assert d["counts"] == [3]
    assert d["correct"] == d["incorrect"] == d["abstain"] == [pytest.approx(1 / 3)]


# --- the stage end to end (~20-25 s: three SFT runs on Ray actors) ---


def test_qa_experiment_stage_end_to_end(tmp_path, ray_cluster):
    from halluray.cli import main
    from tests.conftest import TINY

    args = TINY + [f"run.output_dir={tmp_path}", "run.name=r", "sft.steps=2", "sft.batch_size=4",
                   "sft.lr=1e-3", "eval.samples_per_prompt=2", "logging.wandb_mode=disabled"]
    assert main(["world", *args]) == 0
    assert main(["unfamiliarity", *args]) == 0
    assert main(["qa-experiment", *args]) == 0
    out = tmp_path / "r" / "qa_experiment"
    for f in ["results.json", "answers.jsonl", "heldout_items.jsonl", "fig2.png"]:
        assert (out / f).is_file(), f
    assert (out / "fig2.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    n_eval = results["n_items"] // 6
    assert n_eval >= 1 and results["n_items"] == 6 * n_eval
    assert sum(results["counts"]) == results["n_items"]
    assert len(results["edges"]) + 1 == len(results["counts"])
    for strategy in ("standard", "unfamiliar-idk", "random-idk"):
        r = results[strategy]
        assert len(r["bins"]) == len(results["counts"])
        assert r["samples"] == [2 * c for c in results["counts"]]
        for b, n in enumerate(results["counts"]):
            assert n > 0, "distinct-value or quantile edges leave no bucket empty"
            assert r["correct"][b] + r["incorrect"][b] + r["abstain"][b] == pytest.approx(1.0)
        assert (tmp_path / "r" / f"sft-short_qa-{strategy}" / "model" / "model.safetensors").is_file()
    assert results["standard"]["relabeled"] == 0
    assert results["unfamiliar-idk"]["relabeled"] == results["random-idk"]["relabeled"]
    assert not list(out.parent.glob(".qa_experiment*")), "temp files left behind"
