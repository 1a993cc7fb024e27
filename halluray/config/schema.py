"""The one typed experiment config, `ExperimentConfig`: one section per key, each with every key, default (the
paper's where it gives them) and what it means. Together with the section modules it is the reference for what
a config may contain; `loading.py` reads YAML into it.

The sections: `inputs.py` (world, model, data, fact_checker), `stages.py` (unfamiliarity, sft, reward_data,
reward_model, ppo, eval, lora), `runtime.py` (run, actors, deepspeed, logging); `base.py` holds what they are
built from.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, model_validator

from halluray.config.base import Int, Section
from halluray.config.inputs import WORLD_DATASETS, DataConfig, FactCheckerConfig, ModelConfig, WorldConfig
from halluray.config.runtime import ActorsConfig, DeepSpeedConfig, LoggingConfig, RunConfig
from halluray.config.stages import (
    EvalConfig,
    LoRAConfig,
    PPOConfig,
    RewardDataConfig,
    RewardModelConfig,
    SFTConfig,
    UnfamiliarityConfig,
)
from halluray.secrets import redact


class ExperimentConfig(Section):
    run: RunConfig = RunConfig()
    seed: Int = 0
    threads: Int | None = Field(None, ge=1)
    """torch threads for this process; None lets torch decide."""
    world: WorldConfig = WorldConfig()
    model: ModelConfig = ModelConfig()
    lora: LoRAConfig = LoRAConfig()
    data: DataConfig = DataConfig()
    fact_checker: FactCheckerConfig = FactCheckerConfig()
    unfamiliarity: UnfamiliarityConfig = UnfamiliarityConfig()
    sft: SFTConfig = SFTConfig()
    reward_data: RewardDataConfig = RewardDataConfig()
    reward_model: RewardModelConfig = RewardModelConfig()
    ppo: PPOConfig = PPOConfig()
    actors: ActorsConfig = ActorsConfig()
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    logging: LoggingConfig = LoggingConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _check_sections(self) -> ExperimentConfig:
        a, tiers = self.reward_data.source_accuracy, len(self.world.fact_frequencies)
        if a and len(a) not in (1, tiers):
            raise ValueError(f"reward_data.source_accuracy has {len(a)} values but world.fact_frequencies has "
                             f"{tiers} tiers: give one number, or one per tier")
        if self.sft.replay_documents and self.data.dataset not in WORLD_DATASETS:
            raise ValueError(f"sft.replay_documents replays the world's pretraining corpus; dataset "
                             f"'{self.data.dataset}' has none: set it to 0")
        n = self.reward_data.generator_documents
        if n is not None and len(n) != tiers:
            raise ValueError(f"reward_data.generator_documents has {len(n)} values but world.fact_frequencies has "
                             f"{tiers} tiers: give one per tier")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.run.output_dir) / self.run.name

    def generator_documents_by_frequency(self) -> dict[int, int]:
        """Biographies per person of each corpus frequency in the independent generator's corpus."""
        n, frequencies = self.reward_data.generator_documents, self.world.fact_frequencies
        return dict(zip(frequencies, n if n is not None else [max(4, 2 * f) for f in frequencies]))

    def source_accuracy_by_frequency(self) -> dict[int, float]:
        """The independent source's accuracy for a person of each corpus frequency."""
        a, frequencies = self.reward_data.source_accuracy, self.world.fact_frequencies
        if a is None:
            a = [round(0.6 + 0.3 * i / max(1, len(frequencies) - 1), 4) for i in range(len(frequencies))]
        return dict(zip(frequencies, a * len(frequencies) if len(a) == 1 else a))

    def redacted(self) -> dict:
        """The config as plain data without secrets (halluray.secrets.redact), for files and W&B."""
        return redact(self.model_dump(mode="json"), env_names=[self.fact_checker.api_key_env])

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.redacted(), sort_keys=False)
