"""A 95% bootstrap interval over seeds and people for the demo's headline numbers.

Each seed's test evaluation becomes one array of per-person totals, [method, person, (true facts, false facts,
reward, responses, sum of the per-response fractions of true facts, responses that state a fact)], the same
people for every method. A resample draws seeds with replacement, then within each drawn seed its people with
replacement (the same people for every method: the comparison is paired), and sums the drawn totals; a
statistic reads the summed [method, 6] totals. One seed (a single run) is a bootstrap over its people alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TRUE, FALSE, REWARD, RESPONSES, FRACTION_SUM, STATING = range(6)


def person_totals(per_method: list[list[dict]]) -> np.ndarray:
    """Labeled responses of each method ({"topic", "n_true", "n_false", "reward"}) -> [method, person, 6], people
    in the first method's order of appearance."""
    topics = list(dict.fromkeys(r["topic"] for r in per_method[0]))
    index = {t: i for i, t in enumerate(topics)}
    out = np.zeros((len(per_method), len(topics), 6))
    for m, labeled in enumerate(per_method):
        for r in labeled:
            stated = r["n_true"] + r["n_false"]
            out[m, index[r["topic"]]] += (r["n_true"], r["n_false"], r["reward"], 1,
                                          r["n_true"] / stated if stated else 0.0, stated > 0)
    return out


def fraction_true(totals: np.ndarray, method: int) -> float:
    stated = totals[method, TRUE] + totals[method, FALSE]
    return float(totals[method, TRUE] / stated) if stated else float("nan")


def fraction_true_per_response(totals: np.ndarray, method: int) -> float:
    """The mean over responses that state a fact of their own fraction of true facts (the authors' metric)."""
    stating = totals[method, STATING]
    return float(totals[method, FRACTION_SUM] / stating) if stating else float("nan")


def reward_per_response(totals: np.ndarray, method: int) -> float:
    return float(totals[method, REWARD] / totals[method, RESPONSES])


def bootstrap_intervals(per_seed: list[np.ndarray], statistics: dict[str, Callable[[np.ndarray], float]],
                        n_resamples: int = 2000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """The 2.5th and 97.5th percentiles of each statistic over the same resamples of seeds, then people within
    each seed."""
    rng = np.random.default_rng(seed)
    values = np.empty((len(statistics), n_resamples))
    for i in range(n_resamples):
        totals = np.zeros(per_seed[0].shape[::2])
        for s in rng.integers(len(per_seed), size=len(per_seed)):
            people = rng.integers(per_seed[s].shape[1], size=per_seed[s].shape[1])
            totals += per_seed[s][:, people].sum(axis=1)
        values[:, i] = [f(totals) for f in statistics.values()]
    return {name: (float(lo), float(hi))
            for name, (lo, hi) in zip(statistics, np.nanpercentile(values, [2.5, 97.5], axis=1).T)}
