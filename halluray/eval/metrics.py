"""Small pure metrics used across stages."""

from __future__ import annotations


def auroc(positives: list[float], negatives: list[float]) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    if not positives or not negatives:
        raise ValueError("auroc needs at least one positive and one negative")
    wins = 0.0
    for p in positives:
        for n in negatives:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positives) * len(negatives))


def pooled_fraction_true(n_true: list[int], n_false: list[int]) -> float | None:
    """Fraction of all stated facts that are true, pooled over responses (None if no facts)."""
    total = sum(n_true) + sum(n_false)
    return sum(n_true) / total if total else None
