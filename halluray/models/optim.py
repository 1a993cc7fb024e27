"""AdamW with the paper's warmup + cosine schedule. The DeepSpeed actors and the single-process reference loop
share the parameter groups (`param_groups`) and the schedule; pretraining shares the schedule (`warmup_cosine`)."""

from __future__ import annotations

import math

import torch

from halluray.config import OptimizerConfig

HEAD_PREFIXES = ("head.", "value_head.")
"""Parameters of newly initialised heads: their own learning rate when `head_lr` is set."""


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress_ = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))


def param_groups(model: torch.nn.Module, optim: OptimizerConfig) -> list[dict]:
    """The trainable parameters; new heads in a group of their own at `head_lr` when it is set. No empty group
    (DeepSpeed fails on one): a head over a frozen LM has only the head's."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    is_head = [bool(optim.head_lr) and n.startswith(HEAD_PREFIXES) for n, _ in named]
    body = [p for (_, p), head in zip(named, is_head) if not head]
    heads = [p for (_, p), head in zip(named, is_head) if head]
    return ([{"params": body}] if body else []) + ([{"params": heads, "lr": optim.head_lr}] if heads else [])


def adamw_kwargs(optim: OptimizerConfig) -> dict:
    return dict(lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, weight_decay=optim.weight_decay)


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, optim: OptimizerConfig, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, optim.warmup_steps, total_steps, optim.min_lr_ratio))


def adamw_warmup_cosine(model: torch.nn.Module, optim: OptimizerConfig, total_steps: int):
    """Plain-torch AdamW and its schedule (what a DeepSpeed actor gets from actors/engine.py, without offload)."""
    optimizer = torch.optim.AdamW(param_groups(model, optim), **adamw_kwargs(optim))
    return optimizer, warmup_cosine_schedule(optimizer, optim, total_steps)
