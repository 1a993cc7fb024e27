"""Grouping by unfamiliarity: quantile bins over scores and per-bin means (paper Figs. 2-5, 7)."""

from __future__ import annotations

import bisect


def quantile_edges(scores: list[float], n_bins: int) -> list[float]:
    """Inner edges splitting `scores` into n_bins groups of (nearly) equal size."""
    if not scores:
        raise ValueError("quantile_edges needs scores")
    ordered = sorted(scores)
    return [ordered[min(len(ordered) - 1, (len(ordered) * k) // n_bins)] for k in range(1, n_bins)]


def bin_of(score: float, edges: list[float]) -> int:
    """Bin index: scores below the first edge go to bin 0; ties go to the higher bin."""
    return bisect.bisect_right(edges, score) if edges else 0


def means_by_bin(values: list[float], scores: list[float], edges: list[float]) -> list[float | None]:
    sums, counts = [0.0] * (len(edges) + 1), [0] * (len(edges) + 1)
    for v, s in zip(values, scores):
        b = bin_of(s, edges)
        sums[b] += v
        counts[b] += 1
    return [s / c if c else None for s, c in zip(sums, counts)]
