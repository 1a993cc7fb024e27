"""The one way the world's unfamiliarity scores are computed, by the unfamiliarity stage and by the experiments
that score further held-out queries: few-shot prompts whose shots are people outside the test split, checked
against the base model's context, answered by sampling (short QA, long form) or scored by the likelihood of each
choice (MCQ)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.models.generation import continuation_logprobs, sample
from halluray.world.entities import World

SHORT_QA_NEW_TOKENS = 4
"""New tokens of a sampled short answer: one word and " ." ("I do not know" fills all four)."""


def few_shot_prompts(world: World, items: Sequence, prompt_fn: Callable, n_shots: int, rng: random.Random) -> list[str]:
    """`prompt_fn(item, pool, n_shots, rng)` per item; the shots are drawn from the people outside the test split."""
    pool = [p for p in world.people if p.split != "eval"]
    return [prompt_fn(item, pool, n_shots, rng) for item in items]


def check_context(model, tokenizer, prompts: list[str], reserve: int, what: str) -> None:
    """Stop, naming the fix, when a prompt leaves fewer than `reserve` tokens of the model's context."""
    longest = max(len(x) for x in tokenizer(prompts)["input_ids"])
    if longest > model.config.n_positions - reserve:
        raise InputError(f"few-shot {what} ({longest} tokens) exceed the model context "
                         f"({model.config.n_positions}) minus {reserve}; lower unfamiliarity.n_shots")


def sampler(model, tokenizer, cfg: ExperimentConfig, max_new_tokens: int, seed: int,
            what: str = "prompts") -> Callable[[list[str]], list[str]]:
    """prompts -> one sampled continuation each at `unfamiliarity.temperature`, after `check_context` (which
    leaves room for `unfamiliarity.max_new_tokens`)."""
    u = cfg.unfamiliarity

    def fn(prompts: list[str]) -> list[str]:
        check_context(model, tokenizer, prompts, u.max_new_tokens, what)
        return sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=u.temperature,
                      batch_size=u.batch_size, seed=seed)
    return fn


def choice_logprobs(model, tokenizer, cfg: ExperimentConfig) -> Callable[[list[str], list[str]], list[float]]:
    """(prompts, continuations) -> log P(continuation | prompt), for MCQ scores."""
    return lambda prompts, continuations: continuation_logprobs(model, tokenizer, prompts, continuations,
                                                                cfg.unfamiliarity.batch_size)
