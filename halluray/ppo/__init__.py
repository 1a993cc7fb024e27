"""PPO math on plain torch tensors (no Ray, no DeepSpeed, no model library); `reference_loop.py` runs the same
iteration on models in one process, as the readable reference for the distributed driver.

Per-token tensors are (batch, T), right padded, with a mask marking the response tokens.
"""

from halluray.ppo.advantages import gae, grpo, reinforce_pp, rloo, whiten_advantages
from halluray.ppo.batches import Experience, minibatches, per_prompt_groups
from halluray.ppo.kl import AdaptiveKLController, FixedKLController, kl_k1, kl_k3, kl_penalty, score_on_last_token
from halluray.ppo.losses import entropy_from_logits, explained_variance, policy_loss, value_loss
from halluray.ppo.masked import masked_mean, masked_var, masked_whiten
from halluray.ppo.shaping import RunningMeanStd, clip_rewards, normalize_rewards, shape_scores

__all__ = [
    "AdaptiveKLController", "Experience", "FixedKLController", "RunningMeanStd", "clip_rewards",
    "entropy_from_logits", "explained_variance", "gae", "grpo", "kl_k1", "kl_k3", "kl_penalty", "masked_mean",
    "masked_var", "masked_whiten", "minibatches", "normalize_rewards", "per_prompt_groups", "policy_loss",
    "reinforce_pp", "rloo", "score_on_last_token", "shape_scores", "value_loss", "whiten_advantages",
]
