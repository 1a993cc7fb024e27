"""Forward passes shared by every role: token log-probabilities and the masked NLL loss."""

from __future__ import annotations

import torch


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as HF `generate` uses, so training and sampling see the same positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def logits_of(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids, attention_mask=attention_mask,
                 position_ids=position_ids_from_mask(attention_mask)).logits


def token_logprobs_from_logits(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(x_t | x_<t) for t = 1..T-1, shape (batch, T-1)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return token_logprobs_from_logits(logits_of(model, input_ids, attention_mask), input_ids)


def masked_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the tokens where `loss_mask` (shape (batch, T-1)) is 1."""
    logp = token_logprobs(model, input_ids, attention_mask)
    mask = loss_mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum().clamp(min=1)
