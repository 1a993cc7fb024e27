"""From scored rollouts to training experience: shaped scores, the KL penalty, advantages and returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from halluray.ppo.advantages import gae, grpo, reinforce_pp, rloo, whiten_advantages
from halluray.ppo.batches import Experience
from halluray.ppo.kl import kl_penalty, score_on_last_token
from halluray.ppo.masked import masked_mean
from halluray.ppo.segments import PrefixCredit, credit_prefixes
from halluray.ppo.shaping import RunningMeanStd, normalize_rewards, shape_scores


@dataclass(frozen=True)
class Estimator:
    """How advantages are estimated (`ppo.advantage_estimator` and the settings it reads)."""
    name: str = "gae"
    gamma: float = 1.0
    lam: float = 0.95
    """gae only."""
    whiten: bool = True
    """gae only: whiten the advantages over the batch (reinforce_pp always does; grpo and rloo never, their
    baseline is the group's)."""
    group_size: int = 1
    """grpo and rloo: responses per prompt, contiguous rows."""
    scale_by_std: bool = True
    """grpo only."""

    @classmethod
    def from_config(cls, ppo) -> Estimator:
        return cls(ppo.advantage_estimator, ppo.gamma, ppo.lam, ppo.whiten_advantages, ppo.samples_per_prompt,
                   ppo.grpo_scale_by_std)

    def __call__(self, scores: Tensor, penalty: Tensor, values: Tensor, mask: Tensor,
                 credit: PrefixCredit | None = None) -> tuple[Tensor, Tensor]:
        """Advantages and returns (batch, T) from shaped scores (batch,), the KL penalty, the values and the
        prefix credit of malformed responses (segments.py; None: each response credited as a whole)."""
        if self.name == "gae":
            rewards = credit_prefixes(score_on_last_token(penalty, scores, mask), scores, credit)
            advantages, returns = gae(rewards, values, mask, self.gamma, self.lam)
            return (whiten_advantages(advantages, mask) if self.whiten else advantages), returns
        if self.name == "grpo":
            return grpo(scores, penalty, mask, self.group_size, self.gamma, self.scale_by_std, credit)
        if self.name == "rloo":
            return rloo(scores, penalty, mask, self.group_size, self.gamma, credit)
        if self.name == "reinforce_pp":
            return reinforce_pp(scores, penalty, mask, self.gamma, credit)
        raise ValueError(f"unknown advantage estimator {self.name!r}")


@torch.no_grad()
def make_experience(input_ids: Tensor, attention_mask: Tensor, action_mask: Tensor, old_logprobs: Tensor,
                    ref_logprobs: Tensor, values: Tensor | None, scores: Tensor, *, kl_coef: float,
                    kl_estimator: str, estimator: Estimator, reward_clip: float | None = None,
                    reward_running: RunningMeanStd | None = None,
                    credit: PrefixCredit | None = None) -> tuple[Experience, dict[str, float]]:
    """Per-token tensors are aligned with token log-probs, shape (batch, T-1); action_mask marks responses.
    `scores` are the reward role's raw scores, clipped/normalised by `shape_scores`; `values` None for a
    critic-free estimator (stored as zeros). `credit`'s prefix scores are raw too, shaped as the scores are."""
    scores = shape_scores(scores, clip=reward_clip, running=reward_running)
    if credit is not None:  # the same clip and running statistics, which only the responses' scores update
        prefix = shape_scores(credit.scores.to(scores), clip=reward_clip)
        credit = PrefixCredit(credit.ends, normalize_rewards(prefix, reward_running) if reward_running else prefix)
    penalty, kl = kl_penalty(old_logprobs, ref_logprobs, action_mask, kl_coef, kl_estimator)
    critic = values is not None
    if not critic:
        values = torch.zeros_like(old_logprobs)
    advantages, returns = estimator(scores, penalty, values, action_mask, credit)
    rewards = credit_prefixes(score_on_last_token(penalty, scores, action_mask), scores, credit)
    experience = Experience(input_ids=input_ids, attention_mask=attention_mask, action_mask=action_mask,
                            old_logprobs=old_logprobs, ref_logprobs=ref_logprobs, values=values, rewards=rewards,
                            advantages=advantages, returns=returns)
    # KL of the whole response (sum over its tokens), averaged over responses: what the controller tracks.
    sequence_kl = (kl * action_mask).sum(1)
    stats = {"kl": sequence_kl.mean().item(), "kl_per_token": masked_mean(kl, action_mask).item(),
             **({"value_mean": masked_mean(values, action_mask).item()} if critic else {}),
             "return_mean": masked_mean(returns, action_mask).item(),
             **({"prefix_credited": len(credit.rows) / len(scores)} if credit is not None else {})}
    return experience, stats
