"""What one PPO iteration reports: the same keys from the distributed driver and the reference loop."""

from __future__ import annotations

from torch import Tensor

from halluray.ppo.batches import Experience
from halluray.ppo.losses import explained_variance

SAMPLES_PER_STEP = 4
"""Responses kept from each iteration for the logs."""


def mean_stats(stats: list[dict], prefix: str) -> dict:
    """Mean over ranks and minibatches of each statistic the updates returned."""
    return {prefix + k: sum(s[k] for s in stats) / len(stats) for k in sorted(stats[0])}


def iteration_metrics(scores: Tensor, exp: Experience, exp_stats: dict, kl_coef: float, policy_stats: list[dict],
                      critic_stats: list[dict], n_responses: int, times: dict[str, float], policy_lag: int = 0) -> dict:
    """Raw reward, KL and value statistics, the mean update statistics of each model, response length, phase
    times and how many updates behind the policy that sampled the batch was (`actors.rollout_mode: one-step-off`)."""
    response_tokens = exp.action_mask.sum().item()
    # Without a critic (a critic-free estimator) there are no critic statistics and no values to explain.
    critic = ({**mean_stats(critic_stats, "critic/"),
               "explained_variance": explained_variance(exp.values, exp.returns, exp.action_mask)}
              if critic_stats else {})
    return {
        "reward_mean": scores.mean().item(), "reward_std": scores.std().item(), **exp_stats, "kl_coef": kl_coef,
        **mean_stats(policy_stats, "policy/"), **critic,
        "response_length": response_tokens / n_responses, **{f"time/{k}": v for k, v in times.items()},
        "tokens_per_s": response_tokens / max(1e-9, sum(times.values())), "rollout/policy_lag": float(policy_lag),
    }


def sample_rows(prompts: list[str], responses: list[str], scores: Tensor) -> list[dict]:
    """The first few (prompt, response, reward) of an iteration, for the logs."""
    return [{"prompt": p, "response": r, "reward": s}
            for p, r, s in zip(prompts, responses, scores.tolist())][:SAMPLES_PER_STEP]
