"""The critic role: a backbone with a value head under DeepSpeed (with LoRA when the spec has it: the backbone
frozen, adapters and head trained); values and clipped value-loss steps."""

from __future__ import annotations

import torch

from actors.base import EngineSpec, TrainableActor
from halluray.models.heads import ValueHeadModel
from halluray.ppo.losses import value_loss


class CriticActor(TrainableActor):
    def _build_model(self, spec: EngineSpec):
        return ValueHeadModel.from_pretrained(spec.model_path, spec.trust_remote_code,
                                              spec.lora if spec.lora and spec.lora.enabled else None)

    def _values(self, b: dict) -> torch.Tensor:
        """Value of the state before each next token, aligned with token log-probs: shape (batch, T-1)."""
        return self.engine(b["input_ids"], b["attention_mask"])[:, :-1]

    @torch.no_grad()
    def values(self, batch: dict) -> torch.Tensor:
        self.engine.eval()
        return self._values(self._to_device(batch)).float().cpu()

    def value_step(self, batch: dict, cliprange_value: float) -> dict:
        def loss_fn(b):
            loss, stats = value_loss(self._values(b).float(), b["old_values"], b["returns"], b["action_mask"],
                                     cliprange_value)
            return loss, stats

        return self._train(batch, loss_fn)

    def value_train(self, batch: dict, minibatch_size: int, epochs: int, seed: int,
                    cliprange_value: float) -> list[dict]:
        return self._train_epochs(batch, minibatch_size, epochs, seed,
                                  lambda mb: self.value_step(mb, cliprange_value))
