"""Gates after real short-QA unfamiliarity: stop before any SFT when the scores cannot mean anything.

A table the checker cannot read (aliases that never match, a prompt the model misreads) still produces numbers:
three SFT arms and PPO would train on noise without a word. Each gate reads the unfamiliarity summary
(`record_unfamiliarity.summarize_records`) and names what failed and what to check; thresholds are
`unfamiliarity.gate_*` (defaults that never fire on the built-in tables).
"""

from __future__ import annotations

from halluray.config.stages import UnfamiliarityConfig
from halluray.errors import InputError
from halluray.eval.report import fmt

MIN_SAMPLED_FOR_CORR = 20
"""Fewer sampled queries than this: the correlation is not judged (too few to mean anything)."""
CHECK = "check the table's aliases and answer_prefix and the prompt format (`halluray inspect-table`)"


def gate_failures(summary: dict, u: UnfamiliarityConfig) -> list[str]:
    """What is wrong with the short-QA scores in `summary` (one phrase per failed gate; [] when none)."""
    s = summary.get("short_qa")
    if not isinstance(s, dict):
        return []
    failures = []
    one_way = one_grade(s.get("label_shares") or {}, u)
    if one_way:
        label, share = one_way
        failures.append(f"{share:.0%} of the base model's {s['n_answers']} sampled answers are graded {label} "
                        f"(unfamiliarity.gate_max_label_share {u.gate_max_label_share:g})")
    spread = s["p_gold_p90"] - s["p_gold_p10"]
    if spread < u.gate_min_p_gold_spread:
        failures.append(f"P(gold) has no spread: 10th-90th percentile {fmt(s['p_gold_p10'], 3)}-"
                        f"{fmt(s['p_gold_p90'], 3)} over {s['n']} queries (unfamiliarity.gate_min_p_gold_spread "
                        f"{u.gate_min_p_gold_spread:g})")
    corr = s.get("corr_p_gold_sampled_accuracy")
    if s.get("n_sampled", 0) >= MIN_SAMPLED_FOR_CORR and (corr is None or corr < u.gate_min_corr):
        failures.append(f"corr(P(gold), sampled accuracy) is {fmt(corr, 2)} over {s['n_sampled']} queries "
                        f"(unfamiliarity.gate_min_corr {u.gate_min_corr:g})")
    return failures


def one_grade(shares: dict[str, float], u: UnfamiliarityConfig) -> tuple[str, float] | None:
    """(grade, share) when one grade's share of some answers reaches gate_max_label_share (1: never)."""
    label, share = max(shares.items(), key=lambda kv: kv[1], default=(None, 0.0))
    if label is None or u.gate_max_label_share >= 1 or share < u.gate_max_label_share:
        return None
    return label, share


def check_gates(failures: list[str], where: str) -> None:
    """InputError, one line, when a gate failed (`gate_failures`): the scores in `where` are kept to inspect."""
    if failures:
        raise InputError(f"unfamiliarity gate: {'; '.join(failures)}; {CHECK} (scores kept in {where})")
