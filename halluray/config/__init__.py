"""The typed experiment config (`schema.py`: every key, documented) and how it is read (`loading.py`)."""

from halluray.config.loading import apply_override, build_config, load_config, parse_override
from halluray.config.schema import (ActorsConfig, ConfigError, DataConfig, DeepSpeedConfig, EvalConfig,
                                    ExperimentConfig, FactCheckerConfig, LoggingConfig, LoRAConfig, ModelConfig,
                                    OptimizerConfig, PPOConfig, PretrainConfig, RewardConfig, RewardDataConfig,
                                    RewardModelConfig, RoleResources, RunConfig, SFTConfig, UnfamiliarityConfig,
                                    WorldConfig)

__all__ = [
    "ActorsConfig", "ConfigError", "DataConfig", "DeepSpeedConfig", "EvalConfig", "ExperimentConfig",
    "FactCheckerConfig", "LoRAConfig", "LoggingConfig", "ModelConfig", "OptimizerConfig", "PPOConfig",
    "PretrainConfig", "RewardConfig", "RewardDataConfig", "RewardModelConfig", "RoleResources", "RunConfig",
    "SFTConfig", "UnfamiliarityConfig", "WorldConfig", "apply_override", "build_config", "load_config",
    "parse_override",
]
