"""The critic role: a backbone with a value head under DeepSpeed; values and clipped value-loss steps."""

from __future__ import annotations

import torch

from actors.base import EngineSpec, TrainableActor
from halluray.models.heads import FactVerifier, ValueHeadModel
from halluray.ppo.losses import value_loss


class CriticActor(TrainableActor):
    def _build_model(self, spec: EngineSpec):
        if spec.head == "verifier":
            return FactVerifier.from_pretrained(spec.model_path, spec.trust_remote_code)
        return ValueHeadModel.from_pretrained(spec.model_path, spec.trust_remote_code)

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

    def _last_values(self, b: dict) -> torch.Tensor:
        from halluray.models.heads import last_token_values

        return last_token_values(self.engine(b["input_ids"], b["attention_mask"]).float(), b["attention_mask"])

    def _verifier_logits(self, b: dict) -> torch.Tensor:
        return self.engine(b["input_ids"], b["attention_mask"], b["value_mask"]).float()

    def verifier_step(self, batch: dict) -> dict:
        """The two-stage RM's verifier: binary cross-entropy of its P(true) against the fact's label."""
        def loss_fn(b):
            logits = self._verifier_logits(b)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, b["labels"].float())
            return loss, {"accuracy": ((logits > 0).float() == b["labels"].float()).float().mean().item()}

        return self._train(batch, loss_fn)

    def regression_step(self, batch: dict) -> dict:
        """The scalar RM: squared error of the last-token value against the (scaled) reward."""
        return self._train(batch, lambda b: (torch.nn.functional.mse_loss(self._last_values(b), b["labels"].float()), {}))

    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        """Verifier logits or scalar-RM values, whichever model this rank holds."""
        self.engine.eval()
        b = self._to_device(batch)
        return (self._verifier_logits(b) if self.spec.head == "verifier" else self._last_values(b)).cpu()

    def value_train(self, batch: dict, minibatch_size: int, epochs: int, seed: int, cliprange_value: float) -> list[dict]:
        return self._train_epochs(batch, minibatch_size, epochs, seed,
                                  lambda mb: self.value_step(mb, cliprange_value))

