"""`halluray train-rm`: train the two-stage verifier or the scalar RM on the reward-trainer actors (DeepSpeed)."""

from __future__ import annotations

import json
import math
import random
import time

import torch
from transformers import AutoTokenizer

from actors.base import EngineSpec
from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig, OptimizerConfig
from halluray.errors import InputError
from halluray.io import atomic_write_json, read_jsonl
from halluray.layout import require
from halluray.logging import RunLogger, progress
from halluray.models.heads import verifier_tensors
from halluray.reward_models.data import scalar_examples, verifier_examples
from halluray.reward_models.models import RM_FILE
from halluray.stages.common import prepare

VALIDATION_FRACTION = 0.1


def _tensors(tokenizer, inputs: list, labels: list[float]) -> dict[str, torch.Tensor]:
    """Verifier inputs are (fact, value) pairs; scalar-RM inputs are prompt + response texts."""
    if isinstance(inputs[0], tuple):
        batch = verifier_tensors(tokenizer, list(inputs))
    else:
        enc = tokenizer(list(inputs), return_tensors="pt", padding=True)
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    return {**batch, "labels": torch.tensor(labels)}


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "train-rm")
    rm, source, out, data = cfg.reward_model, cfg.reward_data.source, layout.rm_dir(), layout.reward_data()
    records = read_jsonl(require(data, "reward-data"))
    examples = verifier_examples(records) if rm.kind == "two-stage" else scalar_examples(records)
    # Scalar targets are scaled to unit spread so the head's initial outputs are on the right scale.
    scale = 1.0 if rm.kind == "two-stage" else max(1.0, float(torch.tensor([y for _, y in examples]).std()))
    examples = [(x, y / scale) for x, y in examples]
    random.Random(cfg.seed).shuffle(examples)
    n_val = max(1, int(len(examples) * VALIDATION_FRACTION))
    val, train = examples[:n_val], examples[n_val:]
    steps_per_epoch = len(train) // rm.batch_size
    if steps_per_epoch == 0:
        raise InputError(f"{data}: {len(train)} training examples, fewer than one batch of {rm.batch_size}")
    model_path = str(require(layout.base_model, "world"))
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    step_name = "verifier_step" if rm.kind == "two-stage" else "regression_step"
    init_ray(cfg)
    group = ActorGroup.from_config(Role.REWARD_TRAINER, cfg, batch_size=rm.batch_size,
                                   batch_key="reward_model.batch_size")
    logger = RunLogger(layout.run_dir, cfg, out.name)
    t0 = time.time()
    try:
        group.gather(group.init_engines(EngineSpec(
            model_path=model_path, ds=cfg.deepspeed, total_steps=rm.epochs * steps_per_epoch, seed=cfg.seed,
            optim=OptimizerConfig(lr=rm.lr, head_lr=rm.head_lr, warmup_steps=rm.warmup_steps, weight_decay=0.0),
            micro_batch_size=group.micro_batch_size(rm.batch_size),
            head="verifier" if rm.kind == "two-stage" else "value")))
        step = 0
        for epoch in range(rm.epochs):
            random.Random(cfg.seed + epoch).shuffle(train)
            for b in progress(range(steps_per_epoch), desc=f"{out.name} epoch {epoch + 1}"):
                chunk = train[b * rm.batch_size:(b + 1) * rm.batch_size]
                stats = group.run_sharded(step_name, _tensors(tokenizer, *zip(*chunk)))
                step += 1
                logger.log(step, **{k: sum(s[k] for s in stats) / len(stats) for k in stats[0]})
        predictions = torch.cat(group.run_sharded("predict", _tensors(tokenizer, *zip(*val))))
        group.run("export_hf", str(out))
    finally:
        group.shutdown()
        logger.finish()
    labels = torch.tensor([y for _, y in val])
    if rm.kind == "two-stage":
        quality = {"val_accuracy": ((predictions > 0).float() == labels).float().mean().item()}
    else:
        quality = {"val_rmse": math.sqrt(((predictions - labels) ** 2).mean().item()) * scale}
    meta = {"kind": rm.kind, "source": source, "true_fact": cfg.ppo.reward.true_fact,
            "false_fact": cfg.ppo.reward.false_fact, "scale": scale, "train_examples": len(train), **quality,
            "seconds": round(time.time() - t0, 1)}
    (out / RM_FILE).write_text(json.dumps(meta, indent=2))
    atomic_write_json(out / "summary.json", meta)
    print(f"train-rm [{source}, {rm.kind}]: {len(train)} examples, {quality}; saved to {out} ({meta['seconds']} s)")
    return meta
