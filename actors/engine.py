"""DeepSpeed engine construction and introspection, independent of Ray (the actors call these)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from halluray.config import DeepSpeedConfig, OptimizerConfig
from halluray.models.optim import adamw_kwargs, param_groups

DS_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "deepspeed"


def deepspeed_config(ds: DeepSpeedConfig, micro_batch_size: int, world_size: int, on_gpu: bool) -> dict:
    """configs/deepspeed/zero{stage}.json merged with the run's settings."""
    cfg = copy.deepcopy(json.loads((DS_CONFIG_DIR / f"zero{ds.zero_stage}.json").read_text()))
    cfg["train_micro_batch_size_per_gpu"] = micro_batch_size
    cfg["gradient_accumulation_steps"] = ds.gradient_accumulation_steps
    cfg["train_batch_size"] = micro_batch_size * ds.gradient_accumulation_steps * world_size
    cfg["gradient_clipping"] = ds.gradient_clipping
    bf16 = ds.precision == "bf16" or (ds.precision == "auto" and on_gpu)
    cfg["bf16"] = {"enabled": bf16}
    zero = cfg["zero_optimization"]
    if ds.offload_optimizer and ds.zero_stage > 0:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if ds.offload_param and ds.zero_stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    return cfg


def make_optimizer(model: torch.nn.Module, optim: OptimizerConfig, offload: bool = False):
    """AdamW over trainable parameters (new heads in their own group when `head_lr` is set).
    DeepSpeed's CPU Adam is needed when the optimizer is offloaded."""
    groups, kwargs = param_groups(model, optim), adamw_kwargs(optim)
    if offload:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, adamw_mode=True, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


def param_and_optimizer_bytes(engine) -> dict[str, int]:
    """Bytes this rank holds for model parameters, optimizer master weights and optimizer states.

    Under ZeRO-3 a parameter's local shard is `ds_tensor`; under ZeRO-1/2/3 the wrapped torch optimizer
    owns flat fp32 partitions (master weights) and their Adam moments. Between steps ZeRO-3 keeps its fp32
    partitions in `fp32_partitioned_groups_flat`, outside the wrapped optimizer's param_groups. Storage is
    counted once however many views (flat buffers, per-parameter shards) point into it.
    """
    seen: set[int] = set()

    def count(tensors) -> int:
        total = 0
        for t in tensors:
            storage = t.untyped_storage()
            if storage.nbytes() and storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        return total

    module_params = [getattr(p, "ds_tensor", p) for p in engine.module.parameters()]
    params = count(module_params)
    inner = getattr(engine.optimizer, "optimizer", engine.optimizer)
    master = count([p for g in inner.param_groups for p in g["params"]]
                   + list(getattr(engine.optimizer, "fp32_partitioned_groups_flat", [])))
    states = count([v for s in inner.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0])
    return {"params": params, "master": master, "optimizer_states": states, "total": params + master + states}
