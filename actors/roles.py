"""The roles, declared once: which actor class runs each and whether it trains under DeepSpeed.

`cfg.actors.<role>` gives each role's resources; `ActorGroup.from_config(role, cfg)` joins the two.
"""

from __future__ import annotations

from enum import Enum

from actors.critic import CriticActor
from actors.policy import PolicyActor
from actors.reference import ReferenceActor
from actors.reward import RewardActor
from actors.reward_trainer import RewardTrainerActor
from actors.rollout import RolloutActor


class Role(str, Enum):
    POLICY = "policy"
    """The causal LM being finetuned (SFT and PPO), DeepSpeed."""
    CRITIC = "critic"
    """PPO's value model, DeepSpeed."""
    REFERENCE = "reference"
    """The frozen initial policy for the KL penalty (not used with LoRA: the policy without its adapter)."""
    REWARD = "reward"
    """Scores responses: a fact checker, a callable or a learned reward model."""
    ROLLOUT = "rollout"
    """Generates responses with the policy's synced weights."""
    REWARD_TRAINER = "reward_trainer"
    """Trains a reward model (the two-stage verifier or the scalar RM), DeepSpeed."""

    @property
    def actor_class(self) -> type:
        return _ACTORS[self]

    @property
    def trains(self) -> bool:
        """Holds optimizer state under DeepSpeed: restarted only as a whole group, from a checkpoint."""
        return self in (Role.POLICY, Role.CRITIC, Role.REWARD_TRAINER)


_ACTORS = {Role.POLICY: PolicyActor, Role.CRITIC: CriticActor, Role.REFERENCE: ReferenceActor,
           Role.REWARD: RewardActor, Role.ROLLOUT: RolloutActor, Role.REWARD_TRAINER: RewardTrainerActor}
