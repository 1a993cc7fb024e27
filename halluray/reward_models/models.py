"""Learned reward models, as the reward actor and the RM evaluation use them.

A reward-model directory holds a backbone + value head (`ValueHeadModel`), its tokenizer, and `rm.json`:
{"kind": "two-stage" | "scalar", "true_fact", "false_fact", "scale"}.
- two-stage (paper §5): decompose the response into atomic facts, let the verifier give P(true) for
  each, and return the expected reward sum(p * true_fact + (1 - p) * false_fact).
- scalar: the head's value at the last token of prompt + response, times `scale`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer

from halluray.errors import InputError
from halluray.models.heads import FactVerifier, ValueHeadModel, last_token_values, verifier_tensors
from halluray.world.checker import decompose

RM_FILE = "rm.json"


class ScalarRewardModel:
    def __init__(self, path: str | Path, device: torch.device, trust_remote_code: bool, meta: dict,
                 batch_size: int = 64):
        self.scale = meta.get("scale", 1.0)
        self.model = ValueHeadModel.from_pretrained(path, trust_remote_code).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def last_values(self, texts: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            values = self.model(enc["input_ids"], enc["attention_mask"])
            out.extend(last_token_values(values, enc["attention_mask"]).float().cpu().tolist())
        return out

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return [v * self.scale for v in self.last_values([f"{p} {r}" for p, r in zip(prompts, responses)])]


class TwoStageRewardModel:
    def __init__(self, path, device, trust_remote_code, meta: dict, batch_size: int = 128):
        self.verifier = FactVerifier.from_pretrained(path, trust_remote_code).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.device, self.batch_size = device, batch_size
        self.true_fact, self.false_fact = meta["true_fact"], meta["false_fact"]

    @torch.no_grad()
    def p_true(self, facts: list[tuple[str, str]]) -> list[float]:
        """The verifier: P(true) of each (fact sentence, stated value)."""
        out: list[float] = []
        for start in range(0, len(facts), self.batch_size):
            batch = verifier_tensors(self.tokenizer, [(f"{s} .", v) for s, v in facts[start:start + self.batch_size]])
            batch = {k: t.to(self.device) for k, t in batch.items()}
            out.extend(torch.sigmoid(self.verifier(**batch)).float().cpu().tolist())
        return out

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        # Stage 1, the decomposer: atomic facts of each response, each read as a claim about the topic (a bio
        # of NAME that says "OTHER comes from Oslo" claims NAME comes from Oslo). Otherwise PPO learns to
        # write a familiar person's biography for any name. A repeated claim counts once.
        per_response = [list(dict.fromkeys((s.replace(subject, topic), v) for s, subject, _, v in decompose(r)[0]))
                        for r, topic in zip(responses, topics)]
        # Stage 2, the verifier, then the expected reward of the claims.
        flat = self.p_true([f for facts in per_response for f in facts])
        scores, i = [], 0
        for facts in per_response:
            scores.append(sum(p * self.true_fact + (1 - p) * self.false_fact for p in flat[i:i + len(facts)]))
            i += len(facts)
        return scores



def load_reward_model(path: str | Path, device: torch.device | str = "cpu", trust_remote_code: bool = False):
    meta_path = Path(path) / RM_FILE
    if not meta_path.is_file():
        raise InputError(f"{path} is not a reward-model directory (no {RM_FILE}); train one with `halluray train-rm`")
    meta = json.loads(meta_path.read_text())
    cls = {"two-stage": TwoStageRewardModel, "scalar": ScalarRewardModel}.get(meta.get("kind"))
    if cls is None:
        raise InputError(f"{meta_path}: unknown reward-model kind {meta.get('kind')!r}")
    return cls(path, torch.device(device), trust_remote_code, meta)
