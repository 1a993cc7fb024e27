"""What every stage shares: thread setup, the run directory, the resolved config, the metrics file."""

from __future__ import annotations

from pathlib import Path

import torch

from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.io import atomic_write_text
from halluray.logging import MetricsWriter


def prepare(cfg: ExperimentConfig, stage: str) -> tuple[Path, MetricsWriter]:
    """Create the run directory, write the stage's resolved config, open the metrics file."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / f"config.{stage}.yaml", cfg.to_yaml())
    return run_dir, MetricsWriter(run_dir / "metrics.jsonl")


def world_dir(cfg: ExperimentConfig) -> Path:
    return cfg.run_dir / "world"


def base_model_dir(cfg: ExperimentConfig) -> Path:
    return Path(cfg.model.pretrained_path) if cfg.model.pretrained_path else cfg.run_dir / "base_model"


def require(path: Path, stage: str) -> Path:
    if not path.exists():
        raise InputError(f"{path} does not exist: run `halluray {stage}` with this config first")
    return path


def sample_with_rollouts(cfg: ExperimentConfig, model_path: str, prompts: list[str], params, seed: int) -> list[str]:
    """Responses from rollout actors (HF generate on CPU, the same workers PPO uses)."""
    from actors.group import ActorGroup
    from actors.rollout import RolloutActor
    from halluray.driver import init_ray
    from halluray.models.generation import merge_rollouts

    init_ray(cfg)
    group = ActorGroup(RolloutActor, "rollout", cfg.actors.rollout, threads=cfg.actors.threads_per_actor,
                       call_timeout_s=cfg.actors.call_timeout_s)
    try:
        group.run("init_model", model_path, None, cfg.model.trust_remote_code)
        return merge_rollouts(group.run_sharded("generate", prompts, params, seed))["responses"]
    finally:
        group.shutdown()
