"""Advantage estimators: GAE over a critic's values (Schulman et al. 2016), and the critic-free GRPO, RLOO and
REINFORCE++, which compare a response's score with other responses instead of a learned value."""

from __future__ import annotations

import torch
from torch import Tensor

from halluray.ppo.kl import score_on_last_token
from halluray.ppo.masked import masked_whiten
from halluray.ppo.segments import PrefixCredit, credit_prefixes


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Advantages and returns for right-padded per-token episodes.

    rewards, values, mask: (batch, T); mask marks the response tokens of each row, one contiguous
    run. Each episode ends at its last masked token: the value after it is 0 (no bootstrapping
    past the end of the response). Positions outside the mask get advantage 0 and return 0.

    delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lam * A_{t+1}
    R_t     = A_t + V(s_t)          (the value target, a lambda-return)
    """
    mask = mask.bool()
    # Zero the padding first so whatever it holds cannot leak into a real token.
    rewards = rewards.masked_fill(~mask, 0.0)
    values = values.masked_fill(~mask, 0.0)
    batch, T = rewards.shape

    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros(batch, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        # values[:, t+1] is already 0 past the last response token: that is the terminal state.
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(next_advantage)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        # Multiplying by the mask restarts the recursion at 0 on every non-response position.
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage

    returns = advantages + values
    return advantages, returns


def whiten_advantages(advantages: Tensor, mask: Tensor) -> Tensor:
    """Zero-mean, unit-variance advantages over the response tokens; padding set to 0."""
    return masked_whiten(advantages, mask, shift_mean=True).masked_fill(~mask.bool(), 0.0)


# -- critic-free estimators (no values): the sequence score is compared with other responses instead ----------
#
# Each keeps the per-token KL penalty in the reward, as `gae` does (reward_t = -kl_coef * KL_t, plus the score
# on the last response token), so the one reward rule holds for every estimator. `penalty` is that KL part,
# (batch, T), 0 on padding; `scores` (batch,) is one score per response. Rows of a group are contiguous: the
# k responses to prompt i are rows i*k .. i*k+k-1 (how the driver samples them). `credit` (segments.py) moves
# a malformed response's prefix onto its own score; the baselines are computed from the whole responses' scores.


@torch.no_grad()
def returns_to_go(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """G_t = r_t + gamma * G_{t+1} over each row's response tokens; 0 outside them."""
    mask = mask.bool()
    rewards = rewards.masked_fill(~mask, 0.0)
    returns = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        running = (rewards[:, t] + gamma * running) * mask[:, t]
        returns[:, t] = running
    return returns


def _groups(scores: Tensor, group_size: int) -> Tensor:
    """scores (batch,) as (batch / group_size, group_size): one row per prompt."""
    if group_size < 2 or scores.shape[0] % group_size:
        raise ValueError(f"{scores.shape[0]} scores do not form groups of {group_size} (>= 2) responses per prompt")
    return scores.view(-1, group_size)


def grpo_scale(scores: Tensor, group_size: int, scale_by_std: bool = True, eps: float = 1e-6) -> Tensor:
    """What GRPO divides each row's centred score by: its group's std + eps, or 1 without the std."""
    groups = _groups(scores, group_size)
    scale = groups.std(dim=1, keepdim=True) + eps if scale_by_std else torch.ones_like(groups[:, :1])
    return scale.expand_as(groups).flatten()


def grpo_scores(scores: Tensor, group_size: int, scale_by_std: bool = True, eps: float = 1e-6) -> Tensor:
    """GRPO (Shao et al. 2024): (score - group mean) / (group std + eps); without the std (Dr. GRPO, Liu et al.
    2025) only the mean is subtracted. The std is the unbiased one over the group, as torch.std gives it."""
    groups = _groups(scores, group_size)
    centred = (groups - groups.mean(dim=1, keepdim=True)).flatten()
    return centred / grpo_scale(scores, group_size, scale_by_std, eps)


def rloo_scores(scores: Tensor, group_size: int) -> Tensor:
    """RLOO (Ahmadian et al. 2024): score minus the mean of the other k-1 responses to the same prompt."""
    groups = _groups(scores, group_size)
    others = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).flatten()


@torch.no_grad()
def grpo(scores: Tensor, penalty: Tensor, mask: Tensor, group_size: int, gamma: float = 1.0,
         scale_by_std: bool = True, credit: PrefixCredit | None = None) -> tuple[Tensor, Tensor]:
    """Advantages and returns (the same tensor: there is no value to subtract) from group-normalised scores."""
    rewards = score_on_last_token(penalty, grpo_scores(scores, group_size, scale_by_std), mask)
    rewards = credit_prefixes(rewards, scores, credit, grpo_scale(scores, group_size, scale_by_std))
    returns = returns_to_go(rewards, mask, gamma)
    return returns, returns


@torch.no_grad()
def rloo(scores: Tensor, penalty: Tensor, mask: Tensor, group_size: int, gamma: float = 1.0,
         credit: PrefixCredit | None = None) -> tuple[Tensor, Tensor]:
    """Advantages and returns (the same tensor) from leave-one-out baselined scores."""
    rewards = credit_prefixes(score_on_last_token(penalty, rloo_scores(scores, group_size), mask), scores, credit)
    returns = returns_to_go(rewards, mask, gamma)
    return returns, returns


@torch.no_grad()
def reinforce_pp(scores: Tensor, penalty: Tensor, mask: Tensor, gamma: float = 1.0,
                 credit: PrefixCredit | None = None) -> tuple[Tensor, Tensor]:
    """REINFORCE++ (Hu 2025): returns of the KL-penalised reward, whitened over every response token of the
    batch (the batch mean is the baseline); the returns themselves are returned too."""
    rewards = credit_prefixes(score_on_last_token(penalty, scores, mask), scores, credit)
    returns = returns_to_go(rewards, mask, gamma)
    return whiten_advantages(returns, mask), returns
