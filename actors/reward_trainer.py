"""The reward-trainer role: trains a reward model under DeepSpeed — a two-stage RM's fact verifier (P(true)
per atomic fact; the text RM's belief verifier trains only its head), the text two-stage RM's decomposer LM
(`sft_step`), or the scalar RM (a value head regressing the response's reward)."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from actors.base import EngineSpec, TrainableActor
from halluray.models.heads import ClaimBeliefVerifier, FactVerifier, ValueHeadModel, last_token_values
from halluray.models.lora import apply_lora


class RewardTrainerActor(TrainableActor):
    def _build_model(self, spec: EngineSpec):
        """With `spec.lora` (reward_model.lora) the LMs train adapters (and the value head) only."""
        lora = spec.lora if spec.lora and spec.lora.enabled else None
        if spec.head == "verifier":
            return FactVerifier.from_pretrained(spec.model_path, spec.trust_remote_code)
        if spec.head == "belief":
            return ClaimBeliefVerifier.from_pretrained(spec.model_path, spec.trust_remote_code)
        if spec.head == "lm":
            model = AutoModelForCausalLM.from_pretrained(spec.model_path, trust_remote_code=spec.trust_remote_code,
                                                         use_safetensors=True, local_files_only=True)
            return apply_lora(model, lora) if lora else model
        return ValueHeadModel.from_pretrained(spec.model_path, spec.trust_remote_code, lora)

    def init_engine(self, master_addr: str, master_port: int, spec: EngineSpec) -> dict:
        """The text RM trains its two models one after the other on the same ranks: the first engine's
        weights and optimizer state are released before the second is built."""
        if hasattr(self, "engine"):
            self.engine.destroy()
            del self.engine
        return super().init_engine(master_addr, master_port, spec)

    def _logits(self, b: dict) -> torch.Tensor:
        """A fact verifier's logits (the two-stage RM's, the text RM's belief verifier), or a value head's
        last-token value (the text verifier's logit, or the scalar RM's reward)."""
        if self.spec.head in ("verifier", "belief"):
            return self.engine(b["input_ids"], b["attention_mask"], b["value_mask"]).float()
        return last_token_values(self.engine(b["input_ids"], b["attention_mask"]).float(), b["attention_mask"])

    def verifier_step(self, batch: dict) -> dict:
        """A two-stage RM's verifier: binary cross-entropy of its P(true) against the fact's label."""
        def loss_fn(b):
            logits = self._logits(b)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, b["labels"].float())
            return loss, {"accuracy": ((logits > 0).float() == b["labels"].float()).float().mean().item()}

        return self._train(batch, loss_fn)

    def regression_step(self, batch: dict) -> dict:
        """The scalar RM: squared error of the last-token value against the (scaled) reward."""
        return self._train(batch, lambda b: (torch.nn.functional.mse_loss(self._logits(b), b["labels"].float()), {}))

    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        """Verifier logits or scalar-RM values, whichever model this rank holds."""
        self.engine.eval()
        return self._logits(self._to_device(batch)).cpu()
