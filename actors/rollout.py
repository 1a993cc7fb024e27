"""Rollout workers: sample responses with HF `generate` (KV cache) and receive the policy's weights.

vLLM is not wired in: its wheel is CUDA-only and pins its own torch (docs/runtime.md#rollout-engine); HF
generate is the engine on every machine.
"""

from __future__ import annotations

import torch

from actors.base import WIRE_DTYPE, RankActor, new_sync_group, node_priority
from halluray.config import LoRAConfig
from halluray.models.build import load_model
from halluray.models.generation import SamplingParams, generate_rollout
from halluray.models.lora import apply_lora, is_adapter_param


class RolloutActor(RankActor):
    def init_model(self, model_path: str, lora: LoRAConfig | None = None, trust_remote_code: bool = False) -> None:
        model, self.tokenizer = load_model(model_path, trust_remote_code)
        # Same module structure as the policy, so parameter names and order match for weight sync.
        self.model = (apply_lora(model, lora) if lora and lora.enabled else model).to(self.device).eval()
        self.model.requires_grad_(False)

    def generate(self, prompts: list[str], params: SamplingParams, seed: int) -> dict:
        self._require("model")
        with node_priority():
            return generate_rollout(self.model, self.tokenizer, prompts, params, seed)

    @torch.no_grad()
    def load_weights(self, state_dict: dict) -> int:
        """Weights from the object store (the policy's rank-0 state dict, full or adapters only)."""
        self._require("model")
        params = dict(self.model.named_parameters())
        unknown = sorted(set(state_dict) - set(params))
        if unknown:
            raise ValueError(f"rollout {self.rank}: weights for unknown parameters {unknown[:3]}")
        for name, tensor in state_dict.items():
            params[name].copy_(tensor)
        return len(state_dict)

    def init_sync_group(self, master_addr: str, master_port: int, rank: int, world_size: int) -> None:
        self.sync_group = new_sync_group(master_addr, master_port, rank, world_size, self.on_gpu, self.timeout)

    @torch.no_grad()
    def receive_weights(self, adapters_only: bool = False) -> int:
        """Receive parameters in module order from the policy's rank 0 over the sync group."""
        self._require("sync_group")
        received = 0
        for name, p in self.model.named_parameters():
            if adapters_only and not is_adapter_param(name):
                continue
            buffer = torch.empty(p.shape, dtype=WIRE_DTYPE, device=p.device)
            self.sync_group.broadcast(buffer, 0).wait()
            p.copy_(buffer)
            received += p.numel()
        return received
