"""Held-out short-QA answers as counts per person, for statistics over seeds and their bootstrap interval.

A seed's held-out answers (answers.jsonl rows of qa-experiment / qa-rl: the item's person, its unfamiliarity
score and the labels of its sampled answers) become one array [model, person, position x label]: how many of a
person's answers were correct / incorrect / abstain in the most familiar bucket, the middle one(s) and the most
unfamiliar one (the stage's own bucket edges). Every model answers the same people, so resampling people
(halluray/eval/bootstrap.py) is paired across models; a statistic reads the summed [model, position x label]
counts with `fraction`.
"""

from __future__ import annotations

import math

import numpy as np

from halluray.eval.buckets import bin_of
from halluray.eval.qa import LABELS

POSITIONS = ("familiar", "middle", "unfamiliar")
FAMILIAR, MIDDLE, UNFAMILIAR = range(len(POSITIONS))


def position(bucket: int, n_buckets: int) -> int:
    """The most familiar bucket, a middle one, or the most unfamiliar one. The paper's orderings compare the two
    ends, and a fixed width lets seeds whose ties gave fewer buckets share one array shape."""
    if bucket == 0:
        return FAMILIAR
    return UNFAMILIAR if bucket == n_buckets - 1 else MIDDLE


def person_counts(per_model: list[list[dict]], edges: list[float]) -> np.ndarray:
    """Answer rows of each model ({"name", "score", "labels"}) -> [model, person, position x label] counts,
    people in the first model's order of appearance."""
    people = list(dict.fromkeys(r["name"] for r in per_model[0]))
    index = {p: i for i, p in enumerate(people)}
    out = np.zeros((len(per_model), len(people), len(POSITIONS) * len(LABELS)))
    for m, rows in enumerate(per_model):
        for r in rows:
            where = position(bin_of(r["score"], edges), len(edges) + 1)
            for label in r["labels"]:
                out[m, index[r["name"]], where * len(LABELS) + LABELS.index(label)] += 1
    return out


def fraction(totals: np.ndarray, model: int, label: str, where: int | None = None) -> float:
    """The fraction of `model`'s answers labeled `label` in position `where` (None: over every bucket) of summed
    counts [model, position x label]; NaN where it has no answers, so an ordering on it never holds."""
    cells = totals[model].reshape(len(POSITIONS), len(LABELS))
    if where is not None:
        cells = cells[where:where + 1]
    n = cells.sum()
    return float(cells[:, LABELS.index(label)].sum() / n) if n else math.nan
