"""Score shaping: the sequence score is clipped and normalised by running statistics (`shape_scores`); the
KL penalty joins it per token in halluray/ppo/kl.py (`kl_penalty`, `score_on_last_token`)."""

from __future__ import annotations

import math

from torch import Tensor


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


def shape_scores(scores: Tensor, *, clip: float | None = None, running: RunningMeanStd | None = None) -> Tensor:
    """1. clip the scores to [-clip, clip] (when `clip` is set), so one outlier cannot dominate an update;
    2. normalise by the running mean and std of every clipped score so far (when `running` is given; it is
       updated with this batch first, so it is the one piece of state here)."""
    if clip:
        scores = clip_rewards(scores, clip)
    if running is not None:
        running.update(scores)
        scores = normalize_rewards(scores, running)
    return scores

