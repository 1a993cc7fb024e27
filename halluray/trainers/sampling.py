"""Sampling a model's responses on the rollout actors (HF generate on CPU, the same workers PPO uses)."""

from __future__ import annotations

from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.models.generation import SamplingParams, merge_rollouts


def sample_with_rollouts(cfg: ExperimentConfig, model_path: str, prompts: list[str], params: SamplingParams,
                         seed: int) -> list[str]:
    """Responses of the model in `model_path` to `prompts`, sharded over a rollout group placed for this call."""
    init_ray(cfg)
    group = ActorGroup.from_config(Role.ROLLOUT, cfg)
    try:
        group.run("init_model", model_path, None, cfg.model.trust_remote_code)
        return merge_rollouts(group.run_sharded("generate", prompts, params, seed))["responses"]
    finally:
        group.shutdown()
