"""Per-method long-form numbers of a held-out evaluation: factuality, and what it hides.

The fraction of true facts alone rewards saying nothing: a policy that states one true fact per response
scores 1.0. Beside it go the facts per response (true and false), the ground-truth reward per response and
the no-fact rate (abstained or empty), each overall and by unfamiliarity bin.
"""

from __future__ import annotations

from halluray.eval.buckets import bin_of, means_by_bin
from halluray.eval.metrics import pooled_fraction_true


def stated_nothing(record: dict) -> bool:
    """No checkable fact: an abstention, an empty response, or only unverifiable sentences."""
    return record["n_true"] + record["n_false"] == 0


def response_metrics(labeled: list[dict], scores: list[float], edges: list[float]) -> dict:
    """Labeled responses ({"n_true", "n_false", "reward", "abstained"}) and each one's unfamiliarity score ->
    every per-method number of the evaluation's results.json."""
    n_true, n_false = [r["n_true"] for r in labeled], [r["n_false"] for r in labeled]
    reward = [float(r["reward"]) for r in labeled]
    no_fact = [float(stated_nothing(r)) for r in labeled]
    bins = [bin_of(s, edges) for s in scores]
    n = len(labeled)
    return {
        "fraction_true_facts": pooled_fraction_true(n_true, n_false),
        "mean_true_facts": sum(n_true) / n,
        "mean_false_facts": sum(n_false) / n,
        "mean_reward": sum(reward) / n,
        "no_fact_rate": sum(no_fact) / n,
        "abstain_rate": sum(r["abstained"] for r in labeled) / n,
        "fraction_true_by_unfamiliarity": [
            pooled_fraction_true([t for t, b in zip(n_true, bins) if b == k],
                                 [f for f, b in zip(n_false, bins) if b == k])
            for k in range(len(edges) + 1)],
        "true_facts_by_unfamiliarity": means_by_bin(n_true, scores, edges),
        "false_facts_by_unfamiliarity": means_by_bin(n_false, scores, edges),
        "reward_by_unfamiliarity": means_by_bin(reward, scores, edges),
        "no_fact_rate_by_unfamiliarity": means_by_bin(no_fact, scores, edges),
    }
