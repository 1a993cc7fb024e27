"""Per-actor memory estimates by role, ZeRO stage, offload and precision, and the memory this machine has.

Training ranks (policy, critic, reward_trainer) hold DeepSpeed state:
- parameters: 2 bytes each in bf16, 4 in fp32; ZeRO-3 partitions them over the ranks;
- gradients of the trainable parameters, same width; ZeRO-2 and -3 partition them;
- AdamW: two fp32 moments (8 bytes) and an fp32 master copy (4 more) wherever DeepSpeed keeps one: in bf16,
  under ZeRO-2 even in fp32 (stage_1_and_2.py clones its partition), and with the optimizer offloaded; only
  fp32 under ZeRO-0 or -3 updates the weights in place. ZeRO-2 and -3 partition the optimizer state.
  Offloading moves it (and under ZeRO-3 with offload_param the parameters) to host memory;
- activations kept for the backward pass: an estimate (see LAYER_ACTIVATIONS).
Inference roles (reference, rollout, reward model) hold the weights as saved and what one call processes:
the KV cache of a generation, or one forward pass's activations and logits.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from halluray.config import DeepSpeedConfig
from halluray.preflight.models import ModelShape

PROMPT_TOKENS = 128
"""Tokens assumed for a prompt (with its SFT target): the activation and KV-cache estimates scale with it."""
LAYER_ACTIVATIONS = 17
"""Hidden-sized values one token keeps per transformer layer for the backward pass (Korthikanti et al. 2022:
34 x seq x batch x hidden bytes per layer in 16-bit, leaving out the attention-score term)."""
LOGIT_COPIES = 2
"""fp32 vocabulary-sized tensors per token where log-probs are taken: the logits and their log-softmax."""
MASTER_AND_MOMENTS, MOMENTS = 12, 8
"""AdamW bytes per trainable parameter with and without an fp32 master copy."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ActorMemory:
    """Bytes one actor of a role holds."""

    params: int
    grads: int
    optimizer: int
    activations: int | None
    """None when the model's config does not give its sizes, or the batch is only known once the data is read."""
    offloaded: int = 0
    """The part of params + optimizer that ZeRO offload keeps in host memory instead of the device."""

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer + (self.activations or 0)

    @property
    def on_device(self) -> int:
        return self.total - self.offloaded


def training_memory(model: ModelShape, ds: DeepSpeedConfig, ranks: int, on_gpu: bool, micro_batch: int, seq: int,
                    adapters: int = 0) -> ActorMemory:
    """One DeepSpeed rank of `ranks` on micro-batches of `micro_batch` sequences of `seq` tokens, training the
    whole model, or only the `adapters` LoRA parameters added to the frozen model and its new value head (the
    LoRA critic's)."""
    bf16 = ds.precision == "bf16" or (ds.precision == "auto" and on_gpu)
    width, z = 2 if bf16 else 4, ds.zero_stage
    trainable = adapters + model.head_params if adapters else model.params
    params = _ceil_div((model.params + adapters) * width, ranks if z == 3 else 1)
    grads = _ceil_div(trainable * width, ranks if z >= 2 else 1)
    master = bf16 or z == 2 or ds.offload_optimizer
    optimizer = _ceil_div(trainable * (MASTER_AND_MOMENTS if master else MOMENTS), ranks if z >= 2 else 1)
    offloaded = (optimizer if ds.offload_optimizer and z > 0 else 0) + (params if ds.offload_param and z == 3 else 0)
    activations = _activations(model, micro_batch, seq, width, ds.gradient_checkpointing)
    return ActorMemory(params, grads, optimizer, activations, offloaded)


def _activations(model: ModelShape, batch: int, seq: int, width: int, checkpointing: bool) -> int | None:
    """Kept for the backward pass: every layer's activations, or with checkpointing each layer's input plus
    the one layer being recomputed; and the fp32 logits where the model computes them."""
    if not (model.hidden and model.layers):
        return None
    values = model.layers + LAYER_ACTIVATIONS if checkpointing else model.layers * LAYER_ACTIVATIONS
    logits = LOGIT_COPIES * 4 * (model.vocab or 0) if model.logits else 0
    return batch * seq * (model.hidden * values * width + logits)


def generation_memory(model: ModelShape, batch: int | None, seq: int, adapters: int) -> ActorMemory:
    """A rollout actor: the weights as saved (plus LoRA adapters) and the KV cache of `batch` sequences."""
    width = model.stored_bytes
    kv = (None if batch is None or not (model.layers and model.kv_dim)
          else math.ceil(2 * model.layers * model.kv_dim * width * batch * seq))
    return ActorMemory(math.ceil((model.params + adapters) * width), 0, 0, kv)


def forward_memory(model: ModelShape, batch: int, seq: int) -> ActorMemory:
    """An inference forward pass (reference log-probs, reward-model scores): the weights as saved, and
    activations of one layer at a time plus the logits."""
    width = model.stored_bytes
    if not model.hidden:
        return ActorMemory(math.ceil(model.params * width), 0, 0, None)
    logits = LOGIT_COPIES * 4 * (model.vocab or 0) if model.logits else 0
    return ActorMemory(math.ceil(model.params * width), 0, 0,
                       math.ceil(batch * seq * (model.hidden * LAYER_ACTIVATIONS * width + logits)))


@dataclass(frozen=True)
class Machine:
    """Where `init_ray` places actors when RAY_ADDRESS is unset: this machine."""

    cpus: int
    gpus: int
    gpu_bytes: int
    """Memory of the smallest GPU (0 without GPUs)."""
    host_bytes: int
    """Host memory available now (MemAvailable)."""
    cluster: str | None
    """RAY_ADDRESS: the actors run on that cluster, whose resources this process cannot see without joining it."""


def this_machine() -> Machine:
    gpus = torch.cuda.device_count()
    gpu_bytes = min((torch.cuda.get_device_properties(i).total_memory for i in range(gpus)), default=0)
    return Machine(os.cpu_count() or 1, gpus, gpu_bytes, _available_host_bytes(),
                   os.environ.get("RAY_ADDRESS") or None)


def _available_host_bytes() -> int:
    """MemAvailable from /proc/meminfo (free + reclaimable cache); elsewhere the physical memory."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
