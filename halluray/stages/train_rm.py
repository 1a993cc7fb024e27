"""`halluray train-rm`: train a reward model on the reward-trainer actors (DeepSpeed): the two-stage verifier,
the text two-stage RM's decomposer and verifier LMs (halluray/reward_models/train_text.py), or the scalar RM."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.io import atomic_dir, atomic_write_json, read_jsonl
from halluray.layout import require
from halluray.logging import RunLogger
from halluray.models.heads import verifier_tensors
from halluray.reward_models.data import scalar_examples, verifier_examples
from halluray.reward_models.models import RM_FILE
from halluray.reward_models.train_text import TextRMTraining
from halluray.reward_models.training import fit, split_validation, steps_per_epoch
from halluray.stages.common import prepare


def _tensors(tokenizer, examples: list) -> dict[str, torch.Tensor]:
    """Verifier inputs are (fact, value) pairs; scalar-RM inputs are prompt + response texts."""
    inputs, labels = zip(*examples)
    if isinstance(inputs[0], tuple):
        batch = verifier_tensors(tokenizer, list(inputs))
    else:
        enc = tokenizer(list(inputs), return_tensors="pt", padding=True)
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    return {**batch, "labels": torch.tensor(labels)}


class HeadRMTraining:
    """The two-stage verifier (BCE on each labeled fact) or the scalar RM (regression on the reward)."""

    def __init__(self, cfg: ExperimentConfig, records: list[dict], model_path: str):
        self.cfg, self.model_path = cfg, model_path
        self.two_stage = cfg.reward_model.kind == "two-stage"
        examples = verifier_examples(records) if self.two_stage else scalar_examples(records)
        # Scalar targets are scaled to unit spread so the head's initial outputs are on the right scale.
        self.scale = 1.0 if self.two_stage else max(1.0, float(torch.tensor([y for _, y in examples]).std()))
        self.val, self.train = split_validation([(x, y / self.scale) for x, y in examples], cfg.seed)
        steps_per_epoch(len(self.train), cfg.reward_model.batch_size, "reward data")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)

    def run(self, group: ActorGroup, logger: RunLogger, out: Path) -> dict:
        rm, tensors = self.cfg.reward_model, lambda chunk: _tensors(self.tokenizer, chunk)
        name = "verifier" if self.two_stage else "scalar"
        fit(group, self.cfg, logger, model_path=self.model_path, head="verifier" if self.two_stage else "value",
            step="verifier_step" if self.two_stage else "regression_step", train=self.train, tensors=tensors,
            epochs=rm.epochs, lr=rm.lr, name=name)
        predictions = torch.cat(group.run_sharded("predict", tensors(self.val)))
        group.run("export_hf", str(out))
        labels = torch.tensor([y for _, y in self.val])
        if self.two_stage:
            quality = {"val_accuracy": ((predictions > 0).float() == labels).float().mean().item()}
        else:
            quality = {"val_rmse": math.sqrt(((predictions - labels) ** 2).mean().item()) * self.scale}
        return {"scale": self.scale, "train_examples": len(self.train), **quality}


def run(cfg: ExperimentConfig) -> dict:
    layout = prepare(cfg, "train-rm")
    rm, source, out, data = cfg.reward_model, cfg.reward_data.source, layout.rm_dir(), layout.reward_data()
    records = read_jsonl(require(data, "reward-data"))
    model_path = str(require(layout.base_model, "world"))
    # Examples are built (and their count checked) before any actor starts.
    training = (TextRMTraining if rm.kind == "two-stage-text" else HeadRMTraining)(cfg, records, model_path)
    init_ray(cfg)
    t0 = time.time()
    # A failed run leaves no half-written RM directory (and an earlier one stays as it was).
    with RunLogger(layout.run_dir, cfg, out.name) as logger, atomic_dir(out) as tmp:
        group = ActorGroup.from_config(Role.REWARD_TRAINER, cfg, batch_size=rm.batch_size,
                                       batch_key="reward_model.batch_size")
        try:
            trained = training.run(group, logger, tmp)
        finally:
            group.shutdown()
        meta = {"kind": rm.kind, "source": source, "true_fact": cfg.ppo.reward.true_fact,
                "false_fact": cfg.ppo.reward.false_fact, **trained, "seconds": round(time.time() - t0, 1)}
        (tmp / RM_FILE).write_text(json.dumps(meta, indent=2))
        atomic_write_json(tmp / "summary.json", meta)
    quality = {k: v for k, v in meta.items() if k.startswith(("val_", "decomposer_val_"))}
    print(f"train-rm [{source}, {rm.kind}]: {meta['train_examples']} examples, {quality}; saved to {out} "
          f"({meta['seconds']} s)")
    return meta
