"""Reward shaping, all of it: the sequence score is clipped, normalised by running statistics, then
spread over the response's tokens with the per-token KL penalty (`shape_rewards`)."""

from __future__ import annotations

import math

from torch import Tensor

from halluray.ppo.kl import kl_penalized_rewards


def clip_rewards(scores: Tensor, limit: float) -> Tensor:
    """Clamp scores to [-limit, limit] so a single outlier cannot dominate an update."""
    return scores.clamp(-limit, limit)


class RunningMeanStd:
    """Mean and (population) variance of every value seen so far, updated batch by batch.

    Uses the parallel-combination form of Welford's algorithm (Chan et al. 1979), in float64,
    so the result equals numpy's mean/var over all batches concatenated.
    """

    def __init__(self):
        self.mean = 0.0
        self.var = 0.0
        self.count = 0

    def update(self, x: Tensor) -> None:
        x = x.detach().double().flatten()
        batch_count = x.numel()
        if batch_count == 0:
            return
        batch_mean = x.mean().item()
        batch_var = x.var(unbiased=False).item()

        total = self.count + batch_count
        delta = batch_mean - self.mean
        # Sum of squared deviations of the union = both parts' own + the between-means term.
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / total
        self.mean += delta * batch_count / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = float(state["mean"]), float(state["var"]), int(state["count"])


def normalize_rewards(scores: Tensor, rms: RunningMeanStd, eps: float = 1e-8) -> Tensor:
    """(scores - running mean) / running std. Does not update `rms`: call `rms.update` first."""
    return (scores - rms.mean) / math.sqrt(rms.var + eps)


def shape_rewards(scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, action_mask: Tensor, *, kl_coef: float,
                  kl_estimator: str, clip: float | None = None,
                  running: RunningMeanStd | None = None) -> tuple[Tensor, Tensor]:
    """Per-token rewards and per-token KL, both (batch, T), from one score per response.

    1. clip the scores to [-clip, clip] (when `clip` is set), so one outlier cannot dominate an update;
    2. normalise by the running mean and std of every clipped score so far (when `running` is given; it is
       updated with this batch first, so it is the one piece of state here);
    3. reward_t = -kl_coef * KL_t on each response token, plus the shaped score on its last token.
    """
    if clip:
        scores = clip_rewards(scores, clip)
    if running is not None:
        running.update(scores)
        scores = normalize_rewards(scores, running)
    return kl_penalized_rewards(scores, logprobs, ref_logprobs, action_mask, kl_coef, kl_estimator)
