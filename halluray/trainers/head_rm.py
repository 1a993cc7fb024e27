"""Training of the head reward models on the reward-trainer ranks: the two-stage verifier (binary cross-entropy on
each labeled fact) or the scalar RM (regression on the response's reward)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import AutoTokenizer

from actors.group import ActorGroup
from halluray.config import ExperimentConfig
from halluray.logging import RunLogger
from halluray.models.heads import verifier_tensors
from halluray.reward_models.data import scalar_examples, verifier_examples
from halluray.trainers.rm_fit import fit, split_validation, steps_per_epoch


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
