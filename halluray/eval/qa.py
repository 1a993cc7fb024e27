"""Short-QA predictions by unfamiliarity bucket (paper §4.2, Fig. 2 bottom row): pure bucket math.

Each held-out answer is labeled correct / incorrect / abstain ("I do not know") and the answers are grouped
into buckets of the query's unfamiliarity score; a bucket reports the fraction of each label.

Buckets. The short-QA score is the number of incorrect answers among k few-shot samples of the base model,
an integer in [0, k] with heavy ties (in the demo world, 40 % of held-out queries score exactly k and
over 20 % score 0). Quantile edges (`buckets.quantile_edges`, ties go to the higher bin) are used when every
bin they define is non-empty. When ties collapse them (two equal edges, or an edge equal to the lowest score),
the edges are instead chosen among the *distinct* score values, one edge at a time, each the value whose
count of lower scores is closest to the ideal quantile count k*n/n_bins, keeping edges strictly increasing
and leaving room for a non-empty bin after each. Such edges never split a tie, every bucket is non-empty,
and the buckets are as close to equal-sized as the ties allow (greedily). With fewer distinct scores than
buckets, each distinct score is its own bucket (so fewer buckets than asked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from halluray.eval.buckets import bin_of, quantile_edges

LABELS = ("correct", "incorrect", "abstain")

LabelFn = Callable[[str, str, str], str]
"""(name, attribute, answer) -> 'correct' | 'incorrect' | 'abstain', e.g. ExactChecker.check_answer."""


def bin_counts(scores: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) + 1)
    for s in scores:
        counts[bin_of(s, list(edges))] += 1
    return counts


def distinct_value_edges(scores: Sequence[float], n_bins: int) -> list[float]:
    """Inner edges taken from the distinct score values, as balanced as ties allow (see module doc)."""
    if not scores:
        raise ValueError("distinct_value_edges needs scores")
    distinct = sorted(set(scores))
    if len(distinct) <= n_bins:
        return distinct[1:]
    ordered = sorted(scores)
    below = {v: sum(1 for s in ordered if s < v) for v in distinct}
    edges: list[float] = []
    prev = 0  # index into `distinct` of the previous edge (bin 0 starts at distinct[0])
    for k in range(1, n_bins):
        target = k * len(ordered) / n_bins
        last = len(distinct) - n_bins + k  # leaves one distinct value for each later bin
        best = min(range(prev + 1, last + 1), key=lambda j: (abs(below[distinct[j]] - target), j))
        edges.append(distinct[best])
        prev = best
    return edges


def bucket_edges(scores: Sequence[float], n_bins: int = 3) -> tuple[list[float], str]:
    """(inner edges, method): quantile edges if they give n_bins non-empty bins, else distinct-value edges."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    edges = quantile_edges(list(scores), n_bins)
    if all(bin_counts(scores, edges)):
        return edges, "quantile"
    return distinct_value_edges(scores, n_bins), "distinct-values"


def bin_labels(scores: Sequence[float], edges: Sequence[float]) -> list[str]:
    """Score range of each bin: [lo, hi) with the last one closed at the highest score."""
    lo, hi = min(scores), max(scores)
    bounds = [lo, *edges, hi]
    return [f"[{bounds[b]:g}, {bounds[b + 1]:g}" + ("]" if b == len(edges) else ")") for b in range(len(edges) + 1)]


def fractions_by_bin(labels: Sequence[str], scores: Sequence[float], edges: Sequence[float]) -> dict:
    """{"counts": [...], "correct": [...], "incorrect": [...], "abstain": [...]}; an empty bin's fractions are None."""
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    unknown = set(labels) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}; expected {LABELS}")
    n = len(edges) + 1
    tallies = {label: [0] * n for label in LABELS}
    counts = [0] * n
    for label, score in zip(labels, scores):
        b = bin_of(score, list(edges))
        tallies[label][b] += 1
        counts[b] += 1
    return {"counts": counts, **{label: [t / c if c else None for t, c in zip(tallies[label], counts)]
                                     for label in LABELS}}


def qa_distribution(items: Sequence[Mapping], answers: Sequence[str], scores: Sequence[float], label_fn: LabelFn,
                    n_bins: int = 3, edges: Sequence[float] | None = None) -> dict:
    """Per-bucket fractions of correct / incorrect / abstain answers.

    items: mappings with "name" and "attribute"; answers[i] is the answer to items[i] (already cut at its
    full stop) and scores[i] its unfamiliarity score. Several samples per query: repeat the item and score.
    edges: fixed inner edges (e.g. shared by several models); None computes them with `bucket_edges`.
    """
    if not (len(items) == len(answers) == len(scores)):
        raise ValueError(f"{len(items)} items, {len(answers)} answers and {len(scores)} scores")
    if not items:
        raise ValueError("qa_distribution needs at least one item")
    method = "given"
    if edges is None:
        edges, method = bucket_edges(scores, n_bins)
    labels = [label_fn(i["name"], i["attribute"], a) for i, a in zip(items, answers)]
    return {"bins": bin_labels(scores, edges), "edges": list(edges), "bin_method": method,
            **fractions_by_bin(labels, scores, edges)}
