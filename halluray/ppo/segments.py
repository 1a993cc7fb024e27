"""Segment credit for malformed responses (`ppo.reward.malformed_credit: segment`).

A response scored as a whole hands its score to every one of its tokens: a biography that goes wrong in its
third sentence puts the malformed penalty on its two good sentences too, and abstaining is then the one sure
way to avoid it. With segment credit the tokens of the response's well-formed prefix are credited with the
score that prefix earns as a response of its own, and only the tokens from the first malformed sentence on
with the response's score (the penalty), as fine-grained RLHF (Wu et al. 2023) credits each segment with its
own reward.

It is placed as a reward on the prefix's last token, (prefix score - response score) / scale: with gamma 1 the
return of every prefix token then carries the prefix's score and every later token's the response's, whatever
the estimator's baseline (its `scale` is GRPO's group std, 1 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PrefixCredit:
    """Which rows are credited by segment, and with what."""
    ends: Tensor
    """(batch,) long: per-token index of the last token of the row's well-formed prefix; -1 where the row is
    credited as a whole (well formed, or malformed from its first sentence)."""
    scores: Tensor
    """(batch,): the score of each credited row's prefix as a response of its own; ignored where ends is -1."""

    @property
    def rows(self) -> Tensor:
        return (self.ends >= 0).nonzero().flatten()


def credit_prefixes(rewards: Tensor, scores: Tensor, credit: PrefixCredit | None,
                    scale: Tensor | float = 1.0) -> Tensor:
    """`rewards` (batch, T) with (credit.scores - scores) / scale added on each credited row's prefix end."""
    if credit is None or len(credit.rows) == 0:
        return rewards
    rows = credit.rows.to(rewards.device)
    scale = torch.as_tensor(scale, dtype=rewards.dtype, device=rewards.device).expand(scores.shape[0])
    gain = (credit.scores.to(rewards) - scores.to(rewards)) / scale
    rewards = rewards.clone()
    rewards[rows, credit.ends.to(rewards.device)[rows]] += gain[rows]
    return rewards


def prefix_token_count(tokenizer, response_ids: list[int], prefix: str) -> int:
    """How many of a response's tokens spell `prefix`: the fewest whose decoding, whitespace-normalised as
    rollout texts are, starts with it."""
    target = " ".join(prefix.split())
    for n in range(1, len(response_ids) + 1):
        if " ".join(tokenizer.decode(response_ids[:n], skip_special_tokens=True).split()).startswith(target):
            return n
    raise ValueError(f"the prefix {prefix[:60]!r} is not spelt by the response's tokens")


def prefix_credit(tokenizer, input_ids: Tensor, action_mask: Tensor,
                  credited: list[tuple[str, float] | None]) -> PrefixCredit:
    """The credit of a rollout (input_ids (batch, T), action_mask (batch, T-1) as `generate_rollout` returns
    them) from each row's (prefix text, prefix score), None where the row is credited as a whole."""
    ends = torch.full((len(credited),), -1, dtype=torch.long)
    scores = torch.zeros(len(credited))
    for i, entry in enumerate(credited):
        if entry is None:
            continue
        positions = action_mask[i].nonzero().flatten()  # per-token indices; token t+1 is the one generated
        n = prefix_token_count(tokenizer, input_ids[i, positions + 1].tolist(), entry[0])
        ends[i], scores[i] = positions[n - 1], entry[1]
    return PrefixCredit(ends, scores)
