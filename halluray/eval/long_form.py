"""Per-method long-form numbers of a held-out evaluation: factuality, and what it hides.

The fraction of true facts alone rewards saying nothing: a policy that states one true fact per response
scores 1.0. Beside it go the facts per response (true and false), the ground-truth reward per response, the
no-fact rate (abstained or empty) and the malformed rate (not a well-formed answer, `Checker.well_formed`), each
overall and by unfamiliarity bin. The fraction comes two ways: pooled over all stated facts (FActScore's) and
the per-response mean over responses that state a fact (the authors' `avg_frac_correct_facts`).
"""

from __future__ import annotations

from halluray.eval.buckets import bin_of, means_by_bin
from halluray.eval.metrics import pooled_fraction_true


def stated_nothing(record: dict) -> bool:
    """No checkable fact: an abstention, an empty response, or only unverifiable sentences."""
    return record["n_true"] + record["n_false"] == 0


def per_response_fraction_true(n_true: list[int], n_false: list[int]) -> float | None:
    """Mean over the responses that state a fact of their own fraction of true facts (None if none does)."""
    fractions = [t / (t + f) for t, f in zip(n_true, n_false) if t + f]
    return sum(fractions) / len(fractions) if fractions else None


def response_metrics(labeled: list[dict], scores: list[float], edges: list[float]) -> dict:
    """Labeled responses ({"n_true", "n_false", "reward", "abstained", "malformed"}) and each one's
    unfamiliarity score -> every per-method number of the evaluation's results.json."""
    n_true, n_false = [r["n_true"] for r in labeled], [r["n_false"] for r in labeled]
    reward = [float(r["reward"]) for r in labeled]
    no_fact = [float(stated_nothing(r)) for r in labeled]
    malformed = [float(r["malformed"]) for r in labeled]
    # A response tries a bio unless it is a well-formed one stating no fact (an abstention, a bare mention): the
    # malformed share of those tells a policy that writes cleanly from one that only says nothing more often.
    tried = [bool(r["malformed"]) or r["n_true"] + r["n_false"] > 0 for r in labeled]
    bins = [bin_of(s, edges) for s in scores]
    n = len(labeled)

    def in_bin(values: list, k: int) -> list:
        return [v for v, b in zip(values, bins) if b == k]

    return {
        "fraction_true_facts": pooled_fraction_true(n_true, n_false),
        "fraction_true_per_response": per_response_fraction_true(n_true, n_false),
        "mean_true_facts": sum(n_true) / n,
        "mean_false_facts": sum(n_false) / n,
        "mean_reward": sum(reward) / n,
        "no_fact_rate": sum(no_fact) / n,
        "abstain_rate": sum(r["abstained"] for r in labeled) / n,
        "malformed_rate": sum(malformed) / n,
        "fraction_true_by_unfamiliarity": [pooled_fraction_true(in_bin(n_true, k), in_bin(n_false, k))
                                           for k in range(len(edges) + 1)],
        "fraction_true_per_response_by_unfamiliarity": [
            per_response_fraction_true(in_bin(n_true, k), in_bin(n_false, k)) for k in range(len(edges) + 1)],
        "true_facts_by_unfamiliarity": means_by_bin(n_true, scores, edges),
        "false_facts_by_unfamiliarity": means_by_bin(n_false, scores, edges),
        "reward_by_unfamiliarity": means_by_bin(reward, scores, edges),
        "no_fact_rate_by_unfamiliarity": means_by_bin(no_fact, scores, edges),
        "malformed_rate_by_unfamiliarity": means_by_bin(malformed, scores, edges),
        "malformed_per_try_by_unfamiliarity": means_by_bin([m for m, t in zip(malformed, tried) if t],
                                                           [s for s, t in zip(scores, tried) if t], edges),
    }
