"""KL penalty against the reference (SFT) policy, and its coefficient controllers.

Per-token estimators of KL(pi || pi_ref) from a sample drawn from pi (Schulman, "Approximating
KL divergence", 2020), with log_ratio = ref_logp - logp:
    k1 = -log_ratio                          unbiased, high variance, can be negative
    k3 = exp(log_ratio) - log_ratio - 1      unbiased, lower variance, always >= 0
"""

from __future__ import annotations

import torch
from torch import Tensor


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = log pi - log pi_ref, per token."""
    return logp - ref_logp


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = r - log r - 1 with r = pi_ref / pi, per token."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


KL_ESTIMATORS = {"k1": kl_k1, "k3": kl_k3}


@torch.no_grad()
def kl_penalty(logp: Tensor, ref_logp: Tensor, mask: Tensor, kl_coef: float,
               estimator: str = "k1") -> tuple[Tensor, Tensor]:
    """The KL part of the per-token reward, -kl_coef * KL_t, and the per-token KL; both (batch, T), 0 on padding."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {sorted(KL_ESTIMATORS)}")
    mask = mask.bool()
    if not mask.any(dim=1).all():
        raise ValueError("every row needs at least one response token")
    kl = KL_ESTIMATORS[estimator](logp, ref_logp).masked_fill(~mask, 0.0)
    return -kl_coef * kl, kl


def score_on_last_token(penalty: Tensor, scores: Tensor, mask: Tensor) -> Tensor:
    """Per-token rewards: `penalty` (batch, T) plus each row's score (batch,) on its last response token.

    The reward model judges the whole response, so its score arrives when the episode ends (Ziegler et al. 2019;
    TRL; OpenRLHF)."""
    mask = mask.bool()
    last_token = (torch.arange(mask.shape[1], device=mask.device) * mask).argmax(dim=1)  # last true entry
    rewards = penalty.masked_fill(~mask, 0.0).clone()
    rewards[torch.arange(mask.shape[0], device=mask.device), last_token] += scores.to(rewards.dtype)
    return rewards


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. 2019: steer the coefficient so the observed KL approaches `target`.

    The error is clipped to +-20% so one noisy batch cannot swing the coefficient; `horizon`
    sets how many samples it takes to correct a given error.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        super().__init__(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(float(current_kl) / self.target - 1, -0.2), 0.2)
        mult = 1 + proportional_error * n_steps / self.horizon
        self.value *= mult

    def state_dict(self) -> dict:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.target = float(state["target"])
        self.horizon = float(state["horizon"])
