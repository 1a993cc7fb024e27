"""The epoch loop every RM kind shares: engines with a given head on the reward-trainer ranks, then epochs of
optimizer steps, each on one batch that the group shards over its ranks (mcq-letters runs its SFT arms through
it on the policy ranks)."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

from actors.base import EngineSpec
from actors.group import ActorGroup
from halluray.config import ExperimentConfig, OptimizerConfig
from halluray.errors import InputError
from halluray.logging import RunLogger, progress

VALIDATION_FRACTION = 0.1


def split_validation(examples: list, seed: int) -> tuple[list, list]:
    """(validation, training): a seeded shuffle, then `VALIDATION_FRACTION` (at least one) held out."""
    examples = list(examples)
    random.Random(seed).shuffle(examples)
    n_val = max(1, int(len(examples) * VALIDATION_FRACTION))
    return examples[:n_val], examples[n_val:]


def steps_per_epoch(n_train: int, batch_size: int, what: str) -> int:
    """Checked before any actor starts: fewer examples than one batch is a data problem."""
    if n_train < batch_size:
        raise InputError(f"{what}: {n_train} training examples, fewer than one batch of {batch_size}")
    return n_train // batch_size


def fit(group: ActorGroup, cfg: ExperimentConfig, logger: RunLogger, *, model_path: str, head: str, step: str,
        train: list, tensors: Callable[[list], dict[str, torch.Tensor]], epochs: int, lr: float, name: str,
        first_step: int = 0, batch_size: int | None = None, warmup_steps: int | None = None) -> int:
    """Build the engines (a new model with `head` from `model_path`), then run `step` on every batch of
    `batch_size` examples for `epochs`. `batch_size` and `warmup_steps` are `cfg.reward_model`'s unless given.
    Metrics are logged as `<name>/<key>`; returns the last global step, so that a second model's steps continue
    the count."""
    rm = cfg.reward_model
    batch_size = rm.batch_size if batch_size is None else batch_size
    warmup_steps = rm.warmup_steps if warmup_steps is None else warmup_steps
    n_steps = steps_per_epoch(len(train), batch_size, name)
    group.gather(group.init_engines(EngineSpec(
        model_path=model_path, ds=cfg.deepspeed, total_steps=epochs * n_steps, seed=cfg.seed,
        optim=OptimizerConfig(lr=lr, head_lr=rm.head_lr, warmup_steps=warmup_steps, weight_decay=0.0),
        micro_batch_size=group.micro_batch_size(batch_size), trust_remote_code=cfg.model.trust_remote_code,
        head=head, lora=cfg.lora if rm.lora else None)))
    train, step_no = list(train), first_step
    for epoch in range(epochs):
        random.Random(cfg.seed + epoch).shuffle(train)
        for b in progress(range(n_steps), desc=f"{name} epoch {epoch + 1}"):
            stats = group.run_sharded(step, tensors(train[b * batch_size:(b + 1) * batch_size]))
            step_no += 1
            logger.log(step_no, **{f"{name}/{k}": sum(s[k] for s in stats) / len(stats) for k in stats[0]})
    return step_no
