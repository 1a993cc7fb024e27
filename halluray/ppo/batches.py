"""Rollout storage and minibatching."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Experience:
    """One rollout batch; row i of every field belongs to the same sample.

    input_ids, attention_mask: (B, S) prompt + response tokens, right padded.
    action_mask and the per-token fields (old_logprobs ... returns): (B, A), one entry per
    token position (the driver uses A = S - 1, aligned with token log-probs); action_mask marks
    the generated tokens.
    """

    input_ids: Tensor
    attention_mask: Tensor
    action_mask: Tensor
    old_logprobs: Tensor
    ref_logprobs: Tensor
    values: Tensor
    rewards: Tensor
    advantages: Tensor
    returns: Tensor

    def __post_init__(self):
        sizes = {f.name: getattr(self, f.name).shape[0] for f in dataclasses.fields(self)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"Experience fields disagree on the batch size: {sizes}")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def _map(self, fn) -> Experience:
        return Experience(**{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def index_select(self, idx: Tensor) -> Experience:
        return self._map(lambda t: t.index_select(0, idx.to(t.device)))


def minibatches(n: int, minibatch_size: int, generator: torch.Generator) -> list[Tensor]:
    """Index sets covering range(n) exactly once, in a random order drawn from `generator`.

    The last set is smaller when minibatch_size does not divide n. We keep it rather than drop
    it, so every sample is trained on once per epoch; the losses are masked means, so a short
    minibatch only gives a noisier step, not a differently scaled one.
    """
    if minibatch_size < 1:
        raise ValueError(f"minibatch_size must be >= 1, got {minibatch_size}")
    permutation = torch.randperm(n, generator=generator)
    return list(permutation.split(minibatch_size))



def per_prompt_groups(records: list, samples_per_prompt: int) -> list:
    """Each record `samples_per_prompt` times in a row: the k responses to prompt i are rows i*k .. i*k+k-1,
    the contiguous groups that GRPO and RLOO compare (halluray/ppo/advantages.py)."""
    return [r for r in records for _ in range(samples_per_prompt)]
