"""The synthetic world's independent generator: the standard RM's response source, in GPT-3.5's role.

A second world model with knowledge of its own: the base model trained further on its own draw of biographies
of the RM people (`reward_data.generator_documents` per person, by familiarity tier; more than pretraining
gave them), so it knows the people the policy half-knows better, and where it still knows little it errs as a
model does (another person's values, a half-remembered one), not by a coin flip as the oracle source does.
"""

from __future__ import annotations

from pathlib import Path

from halluray.config import ExperimentConfig, PretrainConfig
from halluray.layout import RunLayout, require
from halluray.logging import RunLogger
from halluray.models.build import load_model, save_model
from halluray.models.pretrain import pretrain
from halluray.world import World
from halluray.world.corpus import generator_corpus

SEED_OFFSET = 1000
"""The generator's corpus and training draw: not the pretraining corpus's seed."""


def train_generator(cfg: ExperimentConfig) -> Path:
    """Train the generator into run_dir/reward-data/generator/ and return that directory."""
    layout, rd = RunLayout(cfg), cfg.reward_data
    world = World.load(require(layout.world_json, "world"))
    docs = generator_corpus(world.split("rm"), cfg.generator_documents_by_frequency(), cfg.seed + SEED_OFFSET)
    base = str(require(layout.base_model, "world"))
    model, tokenizer = load_model(base)
    pretraining = cfg.model.pretrain
    training = PretrainConfig(steps=rd.generator_steps, batch_size=pretraining.batch_size, lr=rd.generator_lr,
                              precision=pretraining.precision,
                              warmup_steps=min(pretraining.warmup_steps, rd.generator_steps // 10))
    with RunLogger(layout.run_dir, cfg, "generator") as logger:
        losses = pretrain(model, tokenizer, docs, training, cfg.seed + SEED_OFFSET, logger)
    save_model(model, tokenizer, layout.generator_model)
    print(f"reward-data: generator trained on {len(docs)} biographies of {len(world.split('rm'))} RM people, "
          f"{rd.generator_steps} steps, final loss {losses[-1]:.3f}")
    return layout.generator_model
