"""Generalized Advantage Estimation (Schulman et al. 2016) over per-token rewards."""

from __future__ import annotations

import torch
from torch import Tensor

from halluray.ppo.masked import masked_whiten


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
