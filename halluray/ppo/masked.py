"""Statistics over the masked (response) entries of a padded batch.

Padding positions never enter a statistic, even when they hold garbage (NaN, inf): they are
replaced by zero with `masked_fill` before any arithmetic, not multiplied by zero.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` over entries where `mask` is true (over all of them, or along `dim`).

    A slice with no masked entry gives 0, not NaN, so an all-padding microbatch cannot poison
    the optimizer.
    """
    mask = mask.bool()
    total = x.masked_fill(~mask, 0.0).sum(dim=dim)
    count = mask.sum(dim=dim).to(x.dtype).clamp(min=1)
    return total / count


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of `x` over all masked entries (Bessel-corrected when `unbiased`)."""
    mask = mask.bool()
    n = int(mask.sum())
    if n < (2 if unbiased else 1):
        raise ValueError(f"masked_var needs at least {2 if unbiased else 1} masked entries, got {n}")
    centered = x - masked_mean(x, mask)
    var = masked_mean(centered ** 2, mask)
    return var * n / (n - 1) if unbiased else var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Scale the masked entries of `x` to unit variance, and to zero mean when `shift_mean`.

    `shift_mean=False` keeps the original mean (only rescales), as TRL does for rewards.
    Padding positions are returned unchanged.
    """
    mask = mask.bool()
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask, whitened, x)
