"""From scored rollouts to training experience: shaped rewards, GAE, advantage whitening."""

from __future__ import annotations

import torch
from torch import Tensor

from halluray.ppo.advantages import gae, whiten_advantages
from halluray.ppo.batches import Experience
from halluray.ppo.masked import masked_mean
from halluray.ppo.shaping import RunningMeanStd, shape_rewards


@torch.no_grad()
def make_experience(input_ids: Tensor, attention_mask: Tensor, action_mask: Tensor, old_logprobs: Tensor,
                    ref_logprobs: Tensor, values: Tensor, scores: Tensor, *, kl_coef: float, kl_estimator: str,
                    gamma: float, lam: float, whiten: bool, reward_clip: float | None = None,
                    reward_running: RunningMeanStd | None = None) -> tuple[Experience, dict[str, float]]:
    """Per-token tensors are aligned with token log-probs, shape (batch, T-1); action_mask marks responses.
    `scores` are the reward role's raw scores; `shape_rewards` clips/normalises them and adds the KL."""
    rewards, kl = shape_rewards(scores, old_logprobs, ref_logprobs, action_mask, kl_coef=kl_coef,
                                kl_estimator=kl_estimator, clip=reward_clip, running=reward_running)
    advantages, returns = gae(rewards, values, action_mask, gamma, lam)
    if whiten:
        advantages = whiten_advantages(advantages, action_mask)
    experience = Experience(input_ids=input_ids, attention_mask=attention_mask, action_mask=action_mask,
                            old_logprobs=old_logprobs, ref_logprobs=ref_logprobs, values=values, rewards=rewards,
                            advantages=advantages, returns=returns)
    # KL of the whole response (sum over its tokens), averaged over responses: what the controller tracks.
    sequence_kl = (kl * action_mask).sum(1)
    stats = {"kl": sequence_kl.mean().item(), "kl_per_token": masked_mean(kl, action_mask).item(),
             "value_mean": masked_mean(values, action_mask).item(),
             "return_mean": masked_mean(returns, action_mask).item()}
    return experience, stats
