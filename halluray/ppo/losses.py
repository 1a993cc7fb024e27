"""PPO loss terms (Schulman et al. 2017), each a masked mean over response tokens."""

from __future__ import annotations

import torch
from torch import Tensor

from halluray.ppo.masked import masked_mean, masked_var


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
                cliprange: float) -> tuple[Tensor, dict[str, float]]:
    """Clipped surrogate objective, negated so that it is minimized.

    Taking the max of the two (negated) surrogates is the pessimistic bound: the policy gets no
    credit for moving the ratio past 1 +- cliprange in the direction the advantage favours.
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    pg_loss_unclipped = -advantages * ratio
    pg_loss_clipped = -advantages * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.max(pg_loss_unclipped, pg_loss_clipped), mask)

    with torch.no_grad():
        # Fraction of tokens whose gradient the clip removed.
        clipfrac = masked_mean((pg_loss_clipped > pg_loss_unclipped).to(logp.dtype), mask)
        # Schulman's k2 estimator of KL(old || new): 0.5 * (log r)^2, low variance, always >= 0.
        approx_kl = masked_mean(0.5 * log_ratio ** 2, mask)
    return loss, {"clipfrac": clipfrac.item(), "approx_kl": approx_kl.item()}


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               cliprange_value: float) -> tuple[Tensor, dict[str, float]]:
    """Clipped value loss: 0.5 * max((V - R)^2, (V_clipped - R)^2).

    V_clipped stays within cliprange_value of the value at rollout time, so, as for the policy,
    one update cannot move the critic far from where the data was collected.
    """
    values_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf_loss_unclipped = (values - returns) ** 2
    vf_loss_clipped = (values_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(vf_loss_unclipped, vf_loss_clipped), mask)

    with torch.no_grad():
        vf_clipfrac = masked_mean((vf_loss_clipped > vf_loss_unclipped).to(values.dtype), mask)
    return loss, {"vf_clipfrac": vf_clipfrac.item()}


def entropy_from_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """Mean entropy of the next-token distributions (logits: batch, T, vocab) over masked tokens."""
    probs = torch.softmax(logits.float(), dim=-1)
    # entr(p) = -p log p with entr(0) = 0, so tokens with probability 0 (-inf logits) are safe.
    token_entropy = torch.special.entr(probs).sum(dim=-1)
    return masked_mean(token_entropy, mask)


@torch.no_grad()
def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """1 - Var(R - V) / Var(R) over masked tokens: 1 is a perfect critic, 0 no better than a
    constant, negative worse. NaN when the returns do not vary."""
    var_returns = masked_var(returns, mask, unbiased=False)
    if var_returns == 0:
        return float("nan")
    return (1 - masked_var(returns - values, mask, unbiased=False) / var_returns).item()
