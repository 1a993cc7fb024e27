"""Tokenized supervised examples: prompt + target + end token, loss on the target and the end token only."""

from __future__ import annotations

import torch


def sft_tensors(tokenizer, prompts: list[str], targets: list[str]) -> dict[str, torch.Tensor]:
    """Right-padded input_ids/attention_mask, and loss_mask (batch, T-1) aligned with token log-probs."""
    rows, starts = [], []
    for prompt, target in zip(prompts, targets):
        p = tokenizer(prompt)["input_ids"]
        t = tokenizer(" " + target)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(p + t)
        starts.append(len(p))
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width - 1), dtype=torch.long)
    for i, (row, start) in enumerate(zip(rows, starts)):
        input_ids[i, :len(row)] = torch.tensor(row)
        attention_mask[i, :len(row)] = 1
        loss_mask[i, start - 1:len(row) - 1] = 1  # predicting tokens start..end
    return {"input_ids": input_ids, "attention_mask": attention_mask, "loss_mask": loss_mask}
