"""The typed experiment config (`schema.py`: `ExperimentConfig`, its sections in `inputs.py`, `stages.py` and
`runtime.py`, every key documented) and how it is read (`loading.py`)."""

from halluray.config.base import ConfigError
from halluray.config.inputs import DataConfig, FactCheckerConfig, ModelConfig, PretrainConfig, WorldConfig
from halluray.config.loading import apply_override, build_config, load_config, parse_override
from halluray.config.runtime import ActorsConfig, DeepSpeedConfig, LoggingConfig, RoleResources, RunConfig
from halluray.config.schema import ExperimentConfig
from halluray.config.stages import (
    CHECKER_REWARDS,
    CRITIC_FREE,
    RM_KINDS,
    EvalConfig,
    LoRAConfig,
    OptimizerConfig,
    PPOConfig,
    RewardConfig,
    RewardDataConfig,
    RewardModelConfig,
    SFTConfig,
    UnfamiliarityConfig,
)

__all__ = [
    "CHECKER_REWARDS", "CRITIC_FREE", "RM_KINDS", "ActorsConfig", "ConfigError", "DataConfig", "DeepSpeedConfig",
    "EvalConfig", "ExperimentConfig", "FactCheckerConfig", "LoRAConfig", "LoggingConfig", "ModelConfig",
    "OptimizerConfig", "PPOConfig", "PretrainConfig", "RewardConfig", "RewardDataConfig", "RewardModelConfig",
    "RoleResources", "RunConfig", "SFTConfig", "UnfamiliarityConfig", "WorldConfig", "apply_override", "build_config",
    "load_config", "parse_override",
]
