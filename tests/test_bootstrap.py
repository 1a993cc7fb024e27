"""The multi-seed summary's interval: per-person totals and the seed-then-people bootstrap."""

import numpy as np

from halluray.eval.bootstrap import (
    bootstrap_intervals,
    fraction_true,
    fraction_true_per_response,
    person_totals,
    reward_per_response,
)


def _r(topic, n_true, n_false, reward):
    return {"topic": topic, "n_true": n_true, "n_false": n_false, "reward": reward}


def test_person_totals_sum_each_persons_samples_per_method():
    a = [_r("Ana", 2, 1, 1.0), _r("Bo", 0, 3, -9.0), _r("Ana", 1, 0, 2.0)]
    b = [_r("Bo", 1, 0, 2.0), _r("Ana", 0, 0, 0.0)]
    totals = person_totals([a, b])
    assert totals.shape == (2, 2, 6)
    # Ana first (her first appearance leads): true, false, reward, responses, sum of fractions, stating a fact
    assert totals[0].tolist() == [[3, 1, 3.0, 2, 2 / 3 + 1, 2], [0, 3, -9.0, 1, 0, 1]]
    assert totals[1].tolist() == [[0, 0, 0.0, 1, 0, 0], [1, 0, 2.0, 1, 1, 1]]
    pooled = totals.sum(axis=1)
    assert fraction_true(pooled, 0) == 3 / 7 and reward_per_response(pooled, 0) == -6.0 / 3
    # per response: (2/3 + 1 + 0) / 3 responses that state a fact; Ana's empty answer for b counts in none
    assert fraction_true_per_response(pooled, 0) == (2 / 3 + 1) / 3 and fraction_true_per_response(pooled, 1) == 1.0


def test_interval_is_a_point_when_every_person_and_seed_agree_and_widens_when_they_do_not():
    same = np.tile(np.array([[[3.0, 1.0, 2.0, 1.0, 0.75, 1.0]]]), (1, 5, 1))
    assert bootstrap_intervals([same, same], {"f": lambda t: fraction_true(t, 0)}, 200) == {"f": (0.75, 0.75)}
    mixed = np.array([[[1.0, 0, 2, 1, 1, 1], [0, 1.0, -3, 1, 0, 1]]])
    intervals = bootstrap_intervals([mixed], {"f": lambda t: fraction_true(t, 0),
                                              "r": lambda t: reward_per_response(t, 0)}, 500)
    # two people, one right and one wrong: all-one or all-other resamples occur
    assert intervals == {"f": (0.0, 1.0), "r": (-3.0, 2.0)}


def test_interval_is_reproducible_for_a_seed():
    data = [np.random.default_rng(s).integers(0, 5, size=(2, 8, 6)).astype(float) + 1 for s in range(3)]
    gap = lambda t: fraction_true(t, 1) - fraction_true(t, 0)  # noqa: E731
    assert bootstrap_intervals(data, {"gap": gap}, 300, seed=4) == bootstrap_intervals(data, {"gap": gap}, 300, seed=4)
