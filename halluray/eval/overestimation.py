"""How much a reward model over-estimates the ground truth, by unfamiliarity tercile (paper Fig. 5 read during
PPO): the reward PPO optimises and the fact checker's reward of the same responses, compared per response.

A policy that hacks a standard RM writes confident facts about people it does not know; the RM pays for them
and the checker does not, so over-estimation (RM minus ground truth) grows first on the most unfamiliar
prompts (tercile 2). Tercile 0 is the most familiar.
"""

from __future__ import annotations

from halluray.eval.buckets import means_by_bin, quantile_edges

N_TERCILES = 3


def tercile_edges(scores: list[float]) -> list[float]:
    """The two inner edges splitting unfamiliarity `scores` (one per prompt) into terciles."""
    return quantile_edges(scores, N_TERCILES)


def overestimation(rm: list[float], gt: list[float], scores: list[float | None],
                   edges: list[float] | None) -> dict[str, float]:
    """Means over responses of the reward model's reward (`rm`) and its over-estimation `rm - gt`, overall
    ({"rm_reward", "overestimation"}) and, given tercile `edges`, per tercile i of the responses' unfamiliarity
    `scores`: "rm_reward_t{i}", "gt_reward_t{i}", "overestimation_t{i}". A response without a score (None)
    counts only overall; a tercile without responses is left out."""
    if not rm or len(rm) != len(gt) or len(rm) != len(scores):
        raise ValueError(f"need one rm reward, gt reward and score per response ({len(rm)}, {len(gt)}, "
                         f"{len(scores)} given)")
    rm_mean, gt_mean = sum(rm) / len(rm), sum(gt) / len(gt)
    out = {"rm_reward": rm_mean, "overestimation": rm_mean - gt_mean}
    if edges is None:
        return out
    scored = [i for i, s in enumerate(scores) if s is not None]
    tercile_scores = [scores[i] for i in scored]
    rm_by = means_by_bin([rm[i] for i in scored], tercile_scores, edges)
    gt_by = means_by_bin([gt[i] for i in scored], tercile_scores, edges)
    for t, (r, g) in enumerate(zip(rm_by, gt_by)):
        if r is not None:
            out.update({f"rm_reward_t{t}": r, f"gt_reward_t{t}": g, f"overestimation_t{t}": r - g})
    return out


def watched_overestimation(metrics: dict[str, float]) -> float:
    """What the alarm watches: over-estimation on the most unfamiliar tercile, or overall when the responses
    were not split by unfamiliarity (no scores) or that tercile had none."""
    return metrics.get(f"overestimation_t{N_TERCILES - 1}", metrics["overestimation"])


def overestimation_alarm(baseline: float, current: float, warn: float) -> bool:
    """Reward hacking suspected: the watched over-estimation has grown by more than `warn` since `baseline`
    (the first evaluation, before any PPO step)."""
    return current - baseline > warn
