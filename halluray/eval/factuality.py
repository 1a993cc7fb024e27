"""Factuality of a set of responses: the paper's headline metric and its parts."""

from __future__ import annotations

from halluray.eval.metrics import pooled_fraction_true
from halluray.factuality.reward_functions import RewardScheme, long_form_reward

_DEFAULT_SCHEME = RewardScheme()  # a frozen dataclass: safe to share as a default


def factuality_metrics(checker, topics: list[str], responses: list[str],
                       scheme: RewardScheme = _DEFAULT_SCHEME) -> dict:
    """fraction_true_facts pools all stated facts (as FActScore); the means are per response."""
    results = checker.check_many(topics, responses)
    n = max(1, len(results))
    return {
        "fraction_true_facts": pooled_fraction_true([r.n_true for r in results], [r.n_false for r in results]),
        "true_facts": sum(r.n_true for r in results) / n,
        "false_facts": sum(r.n_false for r in results) / n,
        "abstain_rate": sum(r.abstained for r in results) / n,
        "no_fact_rate": sum(r.n_true + r.n_false == 0 for r in results) / n,
        "malformed_rate": sum(r.malformed for r in results) / n,
        "reward": sum(long_form_reward(r, scheme) for r in results) / n,
    }
