"""Small pure metrics used across stages."""

from __future__ import annotations

import math


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


def ranks(xs: list[float]) -> list[float]:
    """Ranks from 0, ties sharing their mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and xs[order[end + 1]] == xs[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            out[i] = (start + end) / 2
        start = end + 1
    return out


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r; None for fewer than 3 pairs or a constant side."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho: Pearson's r of the ranks."""
    return pearson(ranks(xs), ranks(ys))
