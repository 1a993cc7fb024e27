"""The reward-trainer role: trains a reward model under DeepSpeed — the two-stage RM's fact verifier
(P(true) per atomic fact) or the scalar RM (a value head regressing the response's reward)."""

from __future__ import annotations

import torch

from actors.base import EngineSpec, TrainableActor
from halluray.models.heads import FactVerifier, ValueHeadModel, last_token_values


class RewardTrainerActor(TrainableActor):
    def _build_model(self, spec: EngineSpec):
        if spec.head == "verifier":
            return FactVerifier.from_pretrained(spec.model_path, spec.trust_remote_code)
        return ValueHeadModel.from_pretrained(spec.model_path, spec.trust_remote_code)

    def _last_values(self, b: dict) -> torch.Tensor:
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
