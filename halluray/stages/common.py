"""What every stage shares: thread setup, the resolved config in the run directory, sampling on rollout actors."""

from __future__ import annotations

import torch

from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.io import atomic_write_text
from halluray.layout import RunLayout
from halluray.models.generation import SamplingParams, merge_rollouts


def prepare(cfg: ExperimentConfig, stage: str) -> RunLayout:
    """Set this process's threads, create the run directory and write the stage's resolved config."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    layout = RunLayout(cfg)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(layout.stage_config(stage), cfg.to_yaml())
    return layout


def sample_with_rollouts(cfg: ExperimentConfig, model_path: str, prompts: list[str], params: SamplingParams,
                         seed: int) -> list[str]:
    """Responses from rollout actors (HF generate on CPU, the same workers PPO uses)."""
    init_ray(cfg)
    group = ActorGroup.from_config(Role.ROLLOUT, cfg)
    try:
        group.run("init_model", model_path, None, cfg.model.trust_remote_code)
        return merge_rollouts(group.run_sharded("generate", prompts, params, seed))["responses"]
    finally:
        group.shutdown()
