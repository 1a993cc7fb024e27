"""The policy role: a causal LM (optionally LoRA) under DeepSpeed; log-probs, SFT and PPO steps, weight export."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from actors.base import EngineSpec, TrainableActor, node_priority
from halluray.models.build import load_tokenizer
from halluray.models.forward import logits_of, token_logprobs, token_logprobs_from_logits
from halluray.models.generation import SamplingParams, generate_rollout
from halluray.models.lora import apply_lora
from halluray.ppo.losses import entropy_from_logits, policy_loss


class PolicyActor(TrainableActor):
    def _build_model(self, spec: EngineSpec):
        model = AutoModelForCausalLM.from_pretrained(spec.model_path, trust_remote_code=spec.trust_remote_code,
                                                     use_safetensors=True, local_files_only=True)
        return apply_lora(model, spec.lora) if spec.lora and spec.lora.enabled else model

    @torch.no_grad()
    def logprobs(self, batch: dict) -> torch.Tensor:
        self.engine.eval()
        b = self._to_device(batch)
        return token_logprobs(self.engine, b["input_ids"], b["attention_mask"]).cpu()

    @torch.no_grad()
    def generate(self, prompts: list[str], params: SamplingParams, seed: int) -> dict:
        """Colocated rollout (`actors.rollout_mode: colocated`): this rank samples its shard of the prompts with
        its own weights, as a rollout worker would with synced ones. Under ZeRO-3 every rank gathers the full
        weights once for the whole generation (a collective: all ranks are called together), rather than per
        forward, where ranks whose responses end sooner would stop joining the gathers. The training RNG is
        left as it was."""
        if not hasattr(self, "tokenizer"):
            self.tokenizer = load_tokenizer(self.spec.model_path, self.spec.trust_remote_code)
        self.engine.eval()
        with (torch.random.fork_rng(devices=[self.device] if self.on_gpu else []), self._full_weights(),
              node_priority()):
            return generate_rollout(self.engine.module, self.tokenizer, prompts, params, seed)

    @torch.no_grad()
    def reference_logprobs(self, batch: dict) -> torch.Tensor:
        """Log-probs of the frozen base model: with LoRA the reference shares the policy's weights."""
        if not (self.spec.lora and self.spec.lora.enabled):
            raise RuntimeError("reference_logprobs from the policy needs LoRA; use a ReferenceActor otherwise")
        self.engine.eval()
        b = self._to_device(batch)
        with self.engine.module.disable_adapter():
            return token_logprobs(self.engine, b["input_ids"], b["attention_mask"]).cpu()

    def ppo_step(self, batch: dict, cliprange: float, entropy_coef: float = 0.0) -> dict:
        """Clipped-surrogate step on a minibatch of experience (old log-probs and advantages given)."""
        def loss_fn(b):
            logits = logits_of(self.engine, b["input_ids"], b["attention_mask"])
            logp = token_logprobs_from_logits(logits, b["input_ids"])
            mask = b["action_mask"]
            pg_loss, stats = policy_loss(logp, b["old_logprobs"], b["advantages"], mask, cliprange)
            # Entropy is only differentiated when it is part of the loss; otherwise it is a logged metric.
            with torch.set_grad_enabled(entropy_coef > 0):
                entropy = entropy_from_logits(logits[:, :-1], mask)
            stats["entropy"] = entropy.item()
            stats["policy_loss"] = pg_loss.item()
            return (pg_loss - entropy_coef * entropy) if entropy_coef > 0 else pg_loss, stats

        return self._train(batch, loss_fn)

    def ppo_train(self, batch: dict, minibatch_size: int, epochs: int, seed: int, cliprange: float,
                  entropy_coef: float = 0.0) -> list[dict]:
        """All PPO epochs of one iteration on this rank's shard of the experience."""
        return self._train_epochs(batch, minibatch_size, epochs, seed,
                                  lambda mb: self.ppo_step(mb, cliprange, entropy_coef))
