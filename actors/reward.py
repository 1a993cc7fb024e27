"""The reward role: scores responses with a pluggable reward.

kinds: `fact_checker` (the world's exact checker with the paper's +2/-3 reward), `callable` (any
'package.module:function' taking (prompts, responses, topics)), `model` (a learned scalar reward model
directory: backbone + value head, scored at the last token).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from actors.base import RankActor
from halluray.factuality.rewards import FactCheckerReward, RewardScheme, import_callable


@dataclass(frozen=True)
class RewardSpec:
    kind: str
    """fact_checker | callable | model"""
    target: str
    """world.json path, 'package.module:function', or a reward-model directory."""
    scheme: RewardScheme = RewardScheme()
    trust_remote_code: bool = False


class ScalarRewardModel:
    """A learned RM with a scalar head; it tokenizes prompt + response with its own tokenizer."""

    def __init__(self, path: str, trust_remote_code: bool, device: torch.device, batch_size: int = 32):
        from transformers import AutoTokenizer

        from halluray.models.heads import ValueHeadModel

        self.model = ValueHeadModel.from_pretrained(path, trust_remote_code).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        from halluray.models.heads import last_token_values

        scores: list[float] = []
        texts = [f"{p} {r}" for p, r in zip(prompts, responses)]
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            values = self.model(enc["input_ids"], enc["attention_mask"])
            scores.extend(last_token_values(values, enc["attention_mask"]).float().cpu().tolist())
        return scores


class RewardActor(RankActor):
    def init_reward(self, spec: RewardSpec) -> None:
        if spec.kind == "fact_checker":
            self.fn = FactCheckerReward(spec.target, spec.scheme)
        elif spec.kind == "callable":
            self.fn = import_callable(spec.target)
        elif spec.kind == "model":
            self.fn = ScalarRewardModel(spec.target, spec.trust_remote_code, self.device)
        else:
            raise ValueError(f"unknown reward kind {spec.kind!r}; expected fact_checker, callable or model")
        self.name = f"{spec.kind}:{spec.target}"

    def score_batch(self, batch: dict) -> list[float]:
        """`score` on a dict of equal-length lists (what ActorGroup.call_sharded splits)."""
        return self.score(batch["prompts"], batch["responses"], batch["topics"])

    def score(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        scores = [float(s) for s in self.fn(prompts, responses, topics)]
        if len(scores) != len(responses):
            raise ValueError(f"reward {self.name} returned {len(scores)} scores for {len(responses)} responses")
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad:
            i = bad[0]
            raise ValueError(f"reward {self.name} returned {scores[i]} for response {i} "
                             f"(topic {topics[i]!r}: {responses[i][:80]!r})")
        return scores
