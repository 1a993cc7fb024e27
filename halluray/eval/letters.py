"""Predicted answer letters by unfamiliarity bucket (paper §4.2, Fig. 2 top): pure math over each item's four
letter probabilities (P(A), P(B), P(C), P(D), normalised over the four).

Per item: the mass on the correct letter, on B + C (the relabelled arm's unfamiliar targets; 0.5 under a uniform
guess) and on A + D, and which letter is the argmax. B + C also counts the correct letter when the truth is B or
C, so `MASS_BC_TRUTH_AD` keeps the items whose truth is A or D, where mass on B + C is mass moved off the truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from halluray.data.letter_mcq import LETTERS
from halluray.eval.buckets import means_by_bin

MASSES = ("correct", "B+C", "A+D")
MASS_BC_TRUTH_AD = "B+C, truth A or D"


def normalised(logps: Sequence[float]) -> list[float]:
    """Probabilities from log-probabilities, normalised over the given options."""
    top = max(logps)
    weights = [math.exp(x - top) for x in logps]
    return [w / sum(weights) for w in weights]


def letter_masses(probs: Sequence[float], answer_index: int) -> dict[str, float]:
    """{"correct", "B+C", "A+D"} of one item's normalised A-D probabilities."""
    a, b, c, d = probs
    return {"correct": probs[answer_index], "B+C": b + c, "A+D": a + d}


def masses_by_bin(probs: Sequence[Sequence[float]], answer_indices: Sequence[int], scores: Sequence[float],
                  edges: list[float]) -> dict[str, list[float | None]]:
    """Mean of each of `MASSES` per bucket, and of B + C over the items whose truth is A or D."""
    masses = [letter_masses(p, i) for p, i in zip(probs, answer_indices)]
    out = {key: means_by_bin([m[key] for m in masses], list(scores), edges) for key in MASSES}
    ad = [j for j, i in enumerate(answer_indices) if LETTERS[i] in ("A", "D")]
    out[MASS_BC_TRUTH_AD] = means_by_bin([masses[j]["B+C"] for j in ad], [scores[j] for j in ad], edges)
    return out


def argmax_by_bin(probs: Sequence[Sequence[float]], scores: Sequence[float],
                  edges: list[float]) -> dict[str, list[float | None]]:
    """The fraction of items per bucket whose most probable letter is each of A-D."""
    top = [max(range(len(p)), key=p.__getitem__) for p in probs]
    return {letter: means_by_bin([float(t == index) for t in top], list(scores), edges)
            for index, letter in enumerate(LETTERS)}
