"""The reference role: the frozen initial policy, giving log-probs for the KL penalty."""

from __future__ import annotations

import torch

from actors.base import RankActor
from halluray.models.build import load_model
from halluray.models.forward import token_logprobs


class ReferenceActor(RankActor):
    def init_model(self, model_path: str, trust_remote_code: bool = False) -> None:
        self.model, _ = load_model(model_path, trust_remote_code)
        self.model.to(self.device).requires_grad_(False)

    @torch.no_grad()
    def logprobs(self, batch: dict) -> torch.Tensor:
        self._require("model")
        b = self._to_device(batch)
        return token_logprobs(self.model, b["input_ids"], b["attention_mask"]).cpu()
