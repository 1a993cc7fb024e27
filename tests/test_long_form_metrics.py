"""The long-form evaluation's numbers (halluray/eval/long_form.py) on hand-made labeled responses."""

import pytest

from halluray.eval.long_form import per_response_fraction_true, response_metrics


def _labeled(n_true, n_false, malformed=False):
    return {"n_true": n_true, "n_false": n_false, "reward": 2 * n_true - 3 * n_false, "abstained": False,
            "malformed": malformed}


def test_the_per_response_fraction_averages_responses_not_facts():
    assert per_response_fraction_true([4, 0], [0, 2]) == pytest.approx(0.5)   # (4/4 + 0/2) / 2; pooled: 4/6
    assert per_response_fraction_true([1, 0], [0, 0]) == 1.0                  # a response with no fact is left out
    assert per_response_fraction_true([0], [0]) is None


def test_malformed_and_no_fact_rates_by_tercile():
    labeled = [_labeled(4, 0), _labeled(0, 0, malformed=True), _labeled(1, 1), _labeled(0, 3)]
    metrics = response_metrics(labeled, scores=[0.0, 0.0, 5.0, 9.0], edges=[1.0, 6.0])
    assert metrics["malformed_rate"] == 0.25 and metrics["no_fact_rate"] == 0.25
    assert metrics["malformed_rate_by_unfamiliarity"] == [0.5, 0.0, 0.0]
    assert metrics["no_fact_rate_by_unfamiliarity"] == [0.5, 0.0, 0.0]
    # Every response here tries a bio (the malformed one included), so the share per try is the same.
    assert metrics["malformed_per_try_by_unfamiliarity"] == [0.5, 0.0, 0.0]
    assert metrics["fraction_true_per_response"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert metrics["fraction_true_facts"] == pytest.approx(5 / 9)
    assert metrics["fraction_true_per_response_by_unfamiliarity"] == [1.0, 0.5, 0.0]


def test_a_policy_that_only_abstains_more_halves_its_malformed_rate_not_its_share_per_try():
    # SFT: 2 clean bios and 2 malformed ones; the policy: the same 4 and 4 abstentions (no fact, well formed).
    bios = [_labeled(3, 0), _labeled(2, 1), _labeled(0, 0, malformed=True), _labeled(1, 0, malformed=True)]
    abstain = {**_labeled(0, 0), "abstained": True}
    sft = response_metrics(bios, [0.0] * 4, [1.0, 6.0])
    rl = response_metrics(bios + [abstain] * 4, [0.0] * 8, [1.0, 6.0])
    assert sft["malformed_rate_by_unfamiliarity"] == [0.5, None, None]
    assert rl["malformed_rate_by_unfamiliarity"] == [0.25, None, None]
    assert sft["malformed_per_try_by_unfamiliarity"] == rl["malformed_per_try_by_unfamiliarity"] == [0.5, None, None]


def test_correlations_match_hand_computed_values():
    from halluray.eval.metrics import pearson, ranks, spearman

    assert ranks([3.0, 1.0, 3.0, 2.0]) == [2.5, 0.0, 2.5, 1.0]  # the two 3s share ranks 2 and 3
    # x = 1, 2, 3, y = 1, 3, 2: deviations (-1, 0, 1) and (-1, 1, 0), r = 1 / sqrt(2 * 2)
    assert pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == 0.5
    assert spearman([10.0, 20.0, 30.0, 40.0], [1.0, 4.0, 9.0, 16.0]) == 1.0  # monotone, not linear
    assert pearson([1.0, 2.0], [2.0, 1.0]) is None and pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
