"""The demo's statistics with 95% bootstrap intervals (halluray/eval/bootstrap.py): over seeds and test people
for `--seeds`, over the held-out entities of one run (real data, where one run is what a user has).

`METHOD_STATISTICS` read the per-person totals of eval's labeled responses (methods in `METHODS` order);
`overestimation_intervals` reads eval-rm's scored SFT samples on the most unfamiliar tercile.
"""

from __future__ import annotations

from halluray.eval.bootstrap import (
    RESPONSES,
    REWARD,
    bootstrap_intervals,
    fraction_true,
    fraction_true_per_response,
    person_totals,
    reward_per_response,
)
from halluray.eval.report import METHODS

SFT, STANDARD, CONSERVATIVE = (METHODS.index(m) for m in ("sft", "rl_standard_rm", "rl_conservative_rm"))

STATISTICS = {
    **{f"fraction_true_facts/{m}": (lambda t, i=i: fraction_true(t, i)) for i, m in enumerate(METHODS)},
    **{f"reward_per_response/{m}": (lambda t, i=i: reward_per_response(t, i)) for i, m in enumerate(METHODS)},
    "gap/fraction_true_conservative_minus_standard":
        lambda t: fraction_true(t, CONSERVATIVE) - fraction_true(t, STANDARD),
    "gap/reward_conservative_minus_standard":
        lambda t: reward_per_response(t, CONSERVATIVE) - reward_per_response(t, STANDARD),
    "gap/reward_standard_minus_sft": lambda t: reward_per_response(t, STANDARD) - reward_per_response(t, SFT),
}
"""What the multi-seed summary reports per seed, as a mean, and with a bootstrap interval."""

METHOD_STATISTICS = {
    **STATISTICS,
    **{f"fraction_true_per_response/{m}": (lambda t, i=i: fraction_true_per_response(t, i))
       for i, m in enumerate(METHODS)},
    "gap/fraction_true_per_response_conservative_minus_standard":
        lambda t: fraction_true_per_response(t, CONSERVATIVE) - fraction_true_per_response(t, STANDARD),
    "gap/fraction_true_per_response_conservative_minus_sft":
        lambda t: fraction_true_per_response(t, CONSERVATIVE) - fraction_true_per_response(t, SFT),
}
"""One run's: the seeds' statistics and the paper's Fig. 6 metric (per-response mean) with its two gaps."""


def method_intervals(per_method: dict[str, list[dict]], seed: int = 0) -> dict[str, tuple[float, float]]:
    """Intervals over the entities of one run's held-out evaluation (each method's labeled responses)."""
    return bootstrap_intervals([person_totals([per_method[m] for m in METHODS])], METHOD_STATISTICS, seed=seed)


def overestimation_intervals(samples: list[dict], entities: set[str], seed: int = 0) -> dict[str, tuple[float, float]]:
    """Intervals over `entities` (the most unfamiliar tercile) of each RM's over-estimation — predicted minus
    ground-truth reward per response — and of the standard RM's excess over the conservative one, from eval-rm's
    samples ({"topic", "reward", "predicted_standard", "predicted_conservative"})."""
    rows = [r for r in samples if r["topic"] in entities]
    if not rows:
        return {}
    columns = ("reward", "predicted_standard", "predicted_conservative")
    totals = person_totals([[{"topic": r["topic"], "n_true": 0, "n_false": 0, "reward": r[c]} for r in rows]
                            for c in columns])

    def over(t, i: int) -> float:
        return float((t[i, REWARD] - t[0, REWARD]) / t[0, RESPONSES])

    return bootstrap_intervals([totals], {
        "overestimation_most_unfamiliar/standard": lambda t: over(t, 1),
        "overestimation_most_unfamiliar/conservative": lambda t: over(t, 2),
        "gap/overestimation_standard_minus_conservative": lambda t: over(t, 1) - over(t, 2)}, seed=seed)
