"""Learned reward models, as the reward actor and the RM evaluation use them.

A reward-model directory holds `rm.json` {"kind", "true_fact", "false_fact", "decision", "scale", metrics...} and:
- two-stage: the verifier (`FactVerifier`) and its tokenizer. Decompose the response into atomic facts with the
  world's template parser, let the verifier give P(true) for each, and return the expected reward
  sum(p * true_fact + (1 - p) * false_fact), or with `decision: threshold` the reward of each fact judged true
  where p > 0.5 (`FactRewardSum`).
- two-stage-text (paper §5, App. D): `decomposer/`, a causal LM that lists the response's atomic facts, and
  `verifier/`, a backbone + value head (`ValueHeadModel`) whose last-token value is the logit of P(true) of
  "prompt + fact" (or, `verifier: belief`, a `ClaimBeliefVerifier`); the same reward of its facts. Works on any
  text.
- scalar: a backbone + value head; its value at the last token of prompt + response, times `scale`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList

from halluray.errors import InputError
from halluray.factuality.fact_checkers import is_abstention
from halluray.layout import RM_FILE
from halluray.models.build import load_model
from halluray.models.heads import (
    ClaimBeliefVerifier,
    FactVerifier,
    ValueHeadModel,
    claim_tensors,
    last_token_values,
    verifier_tensors,
)
from halluray.reward_models.text import DECOMPOSER_PROMPT, FactLines, verifier_input
from halluray.world.checker import decompose

DECOMPOSER_DIR, VERIFIER_DIR = "decomposer", "verifier"


Claims = list[tuple[str, float]]
"""One response's claims as a two-stage RM reads them: (claim text, the verifier's P(true)), in order."""


def paired(texts: list[list[str]], p_true: list[float]) -> list[Claims]:
    """Each response's claim texts with their P(true), given in one flat list in the same order."""
    flat = iter(p_true)
    return [[(text, next(flat)) for text in claims] for claims in texts]


class FactRewardSum:
    """A two-stage RM's reward from its `claims(prompts, responses, topics)`, summed over each response's claims:
    p * true_fact + (1 - p) * false_fact (`decision` "expected"), or true_fact where p > 0.5 and false_fact
    otherwise ("threshold", reward_model.decision). `claims` is also what the reward actor's `explain` shows."""
    true_fact: float
    false_fact: float
    decision: str = "expected"

    def _fact_rewards_from(self, meta: dict) -> None:
        """The rewards of a true and a false fact and the decision rule, as `rm.json` gives them."""
        self.true_fact, self.false_fact = meta["true_fact"], meta["false_fact"]
        self.decision = meta.get("decision", "expected")

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return self.rewards_of(self.claims(prompts, responses, topics))

    def fact_reward(self, p: float) -> float:
        if self.decision == "threshold":
            return self.true_fact if p > 0.5 else self.false_fact
        return p * self.true_fact + (1 - p) * self.false_fact

    def rewards_of(self, claims: list[Claims]) -> list[float]:
        """The reward of each response from its claims."""
        return [sum((self.fact_reward(p) for _, p in c), 0.0) for c in claims]


class ScalarRewardModel:
    def __init__(self, path: str | Path, device: torch.device, trust_remote_code: bool, meta: dict,
                 batch_size: int = 64):
        self.scale = meta.get("scale", 1.0)
        self.model = ValueHeadModel.from_pretrained(path, trust_remote_code).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def last_values(self, texts: list[str], max_length: int | None = None) -> list[float]:
        """The head's value at the last token of each text (cut to `max_length` tokens on the tokenizer's
        truncation side, if given)."""
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                 truncation=max_length is not None, max_length=max_length)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            values = self.model(enc["input_ids"], enc["attention_mask"])
            out.extend(last_token_values(values, enc["attention_mask"]).float().cpu().tolist())
        return out

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return [v * self.scale for v in self.last_values([f"{p} {r}" for p, r in zip(prompts, responses)])]


class TwoStageRewardModel(FactRewardSum):
    def __init__(self, path, device, trust_remote_code, meta: dict, batch_size: int = 128):
        self.verifier = FactVerifier.from_pretrained(path, trust_remote_code).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.device, self.batch_size = device, batch_size
        self._fact_rewards_from(meta)

    @torch.no_grad()
    def p_true(self, facts: list[tuple[str, str]]) -> list[float]:
        """The verifier: P(true) of each (fact sentence, stated value)."""
        out: list[float] = []
        for start in range(0, len(facts), self.batch_size):
            batch = verifier_tensors(self.tokenizer, [(f"{s} .", v) for s, v in facts[start:start + self.batch_size]])
            batch = {k: t.to(self.device) for k, t in batch.items()}
            out.extend(torch.sigmoid(self.verifier(**batch)).float().cpu().tolist())
        return out

    def p_true_facts(self, items: list[dict]) -> list[float]:
        """P(true) of labeled facts ({"prompt", "topic", "text", "value"}): this verifier reads text + value."""
        return self.p_true([(item["text"], item["value"]) for item in items])

    def claims(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[Claims]:
        """Each response's fact sentences, read as about its topic, with the verifier's P(true)."""
        # Stage 1, the decomposer: atomic facts of each response, each read as a claim about the topic (a bio
        # of NAME that says "OTHER comes from Oslo" claims NAME comes from Oslo). Otherwise PPO learns to
        # write a familiar person's biography for any name. A repeated claim counts once.
        per_response = [list(dict.fromkeys((s.replace(subject, topic), v) for s, subject, _, v in decompose(r)[0]))
                        for r, topic in zip(responses, topics)]
        # Stage 2, the verifier.
        flat = self.p_true([f for facts in per_response for f in facts])
        return paired([[s for s, _ in facts] for facts in per_response], flat)


class CopyOnly(LogitsProcessor):
    """Greedy decoding that may only write tokens of the row's own response, the fact separators and EOS: an
    extractive decomposer (`reward_model.decomposer_copy_only`)."""

    def __init__(self, allowed: list[set[int]], vocab_size: int):
        self.mask = torch.full((len(allowed), vocab_size), float("-inf"))
        for row, ids in enumerate(allowed):
            self.mask[row, sorted(i for i in ids if i < vocab_size)] = 0.0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores + self.mask[:, :scores.shape[1]].to(scores.device)


class TextDecomposer:
    """Stage 1 of the text RM: a causal LM that writes a response's atomic facts, greedily; with `copy_only`
    only out of the response's own tokens."""

    def __init__(self, path: str | Path, device: torch.device, trust_remote_code: bool, max_new_tokens: int,
                 max_length: int, batch_size: int = 32, copy_only: bool = False):
        self.model, self.tokenizer = load_model(path, trust_remote_code)
        self.model.to(device)
        # A response too long for the context is read from its end: the prompt must end with "Facts:".
        self.tokenizer.truncation_side = "left"
        self.lines = FactLines.for_tokenizer(self.tokenizer)
        self.device, self.batch_size, self.copy_only = device, batch_size, copy_only
        self.max_new_tokens, self.max_prompt = max_new_tokens, max_length - max_new_tokens
        # What every fact list may use besides the response's tokens: its separators and the end.
        self.separators = set(self.tokenizer(self.lines.format(["x", "x"]))["input_ids"]) - set(
            self.tokenizer("x")["input_ids"]) | {self.tokenizer.eos_token_id}

    def _copy_only(self, responses: list[str]) -> list[LogitsProcessor]:
        if not self.copy_only:
            return []
        allowed = [set(self.tokenizer(" " + r)["input_ids"]) | set(self.tokenizer(r)["input_ids"]) | self.separators
                   for r in responses]
        return [CopyOnly(allowed, self.model.get_output_embeddings().weight.shape[0])]

    @torch.no_grad()
    def __call__(self, responses: list[str]) -> list[list[str]]:
        """Facts of each response, deduplicated in order; none for an abstention (the LM is not asked)."""
        out: list[list[str]] = [[] for _ in responses]
        todo = [i for i, r in enumerate(responses) if not is_abstention(r)]
        for start in range(0, len(todo), self.batch_size):
            rows = todo[start:start + self.batch_size]
            enc = self.tokenizer([DECOMPOSER_PROMPT.format(response=responses[i]) for i in rows],
                                 return_tensors="pt", padding=True, truncation=True, max_length=self.max_prompt)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            copying = LogitsProcessorList(self._copy_only([responses[i] for i in rows]))
            gen = self.model.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id, logits_processor=copying)
            texts = self.tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(rows, texts):
                out[i] = self.lines.parse(text)
        return out


class TextVerifier:
    """The text RM's finetuned verifier (`reward_model.verifier: text`), read like the scalar RM: a value head at
    the last token of "prompt + Fact: fact" (here the logit of P(true))."""

    def __init__(self, path: Path, device: torch.device, trust_remote_code: bool, max_length: int, batch_size: int):
        self.model = ScalarRewardModel(path, device, trust_remote_code, {}, batch_size)
        self.model.tokenizer.truncation_side = "left"  # keep the fact, at the end of the input
        self.max_length = max_length

    def __call__(self, prompts: list[str], facts: list[str]) -> list[float]:
        logits = self.model.last_values([verifier_input(p, f) for p, f in zip(prompts, facts)],
                                        max_length=self.max_length)
        return torch.sigmoid(torch.tensor(logits)).tolist()


class BeliefVerifier:
    """The text RM's belief verifier (`reward_model.verifier: belief`, `ClaimBeliefVerifier`): the frozen LM's
    belief in the fact read right after the prompt."""

    def __init__(self, path: Path, device: torch.device, trust_remote_code: bool, max_length: int, batch_size: int):
        self.model = ClaimBeliefVerifier.from_pretrained(path, trust_remote_code).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.device, self.max_length, self.batch_size = device, max_length, batch_size

    @torch.no_grad()
    def __call__(self, prompts: list[str], facts: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(facts), self.batch_size):
            end = start + self.batch_size
            batch = claim_tensors(self.tokenizer, prompts[start:end], facts[start:end], self.max_length)
            out.extend(torch.sigmoid(self.model(**{k: t.to(self.device) for k, t in batch.items()})).cpu().tolist())
        return out


class TextTwoStageRewardModel(FactRewardSum):
    """Decomposer LM + verifier LM (paper §5): the facts the decomposer writes, each verified with the prompt."""

    def __init__(self, path, device, trust_remote_code, meta: dict, batch_size: int = 64):
        path = Path(path)
        self.decomposer = TextDecomposer(path / DECOMPOSER_DIR, device, trust_remote_code,
                                         meta["decomposer_max_new_tokens"], meta["max_length"],
                                         copy_only=meta.get("decomposer_copy_only", False))
        verifier = BeliefVerifier if meta.get("verifier") == "belief" else TextVerifier
        self.verifier = verifier(path / VERIFIER_DIR, device, trust_remote_code, meta["max_length"], batch_size)
        self._fact_rewards_from(meta)

    def p_true(self, prompts: list[str], facts: list[str]) -> list[float]:
        """The verifier: P(true) of each fact as a claim in reply to its prompt."""
        return self.verifier(prompts, facts)

    def p_true_facts(self, items: list[dict]) -> list[float]:
        """P(true) of labeled facts ({"prompt", "topic", "text", "value"}): this verifier reads prompt + text."""
        return self.p_true([item["prompt"] for item in items], [item["text"] for item in items])

    def claims(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[Claims]:
        """Each response's facts as the decomposer writes them, with the verifier's P(true) given the prompt."""
        per_response = self.decomposer(responses)
        flat = self.p_true([p for p, facts in zip(prompts, per_response) for _ in facts],
                           [f for facts in per_response for f in facts])
        return paired(per_response, flat)



def load_reward_model(path: str | Path, device: torch.device | str = "cpu", trust_remote_code: bool = False):
    meta_path = Path(path) / RM_FILE
    if not meta_path.is_file():
        raise InputError(f"{path} is not a reward-model directory (no {RM_FILE}); train one with `halluray train-rm`")
    meta = json.loads(meta_path.read_text())
    cls = {"two-stage": TwoStageRewardModel, "two-stage-text": TextTwoStageRewardModel,
           "scalar": ScalarRewardModel}.get(meta.get("kind"))
    if cls is None:
        raise InputError(f"{meta_path}: unknown reward-model kind {meta.get('kind')!r}")
    return cls(path, torch.device(device), trust_remote_code, meta)
