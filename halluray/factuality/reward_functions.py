"""The paper's reward functions and the pluggable reward interface the reward actor calls.

Long form: +2 per true fact, -3 per false fact, and with `malformed` set (`ppo.reward.malformed_penalty`) that
penalty instead for a response that is not a well-formed answer (`Checker.well_formed`: the authors give a
biography not of the form "Bio: ... ." the reward of five false facts). Short QA / MCQ: +2 correct, -3
incorrect, and 0 for abstaining (-3 in the control that punishes abstention).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from halluray.config import RewardConfig
from halluray.errors import InputError
from halluray.factuality.base import well_formed_prefix
from halluray.factuality.checking import Checker
from halluray.world.checker import CheckResult

RewardFn = Callable[[list[str], list[str], list[str]], list[float]]
"""(prompts, responses, topics) -> one scalar reward per response."""


@dataclass(frozen=True)
class RewardScheme:
    true_fact: float = 2.0
    false_fact: float = -3.0
    correct: float = 2.0
    incorrect: float = -3.0
    abstain: float = 0.0
    malformed: float | None = None
    """Long form: the reward of a malformed response, whatever it states; None: no such rule."""

    @classmethod
    def from_config(cls, reward: RewardConfig) -> RewardScheme:
        """The scheme of a config's `ppo.reward` section (the one place a scheme is built from a config)."""
        return cls(true_fact=reward.true_fact, false_fact=reward.false_fact, correct=reward.correct,
                   incorrect=reward.incorrect, abstain=reward.abstain, malformed=reward.malformed_penalty)


def long_form_reward(result: CheckResult, scheme: RewardScheme) -> float:
    if result.malformed and scheme.malformed is not None:
        return scheme.malformed
    return scheme.true_fact * result.n_true + scheme.false_fact * result.n_false


class MalformedPenalty:
    """Any long-form reward (a learned RM, a callable) with the malformed-response rule on top: the run's
    checker decides the form (`Checker.well_formed`, no fact is verified), the inner reward scores the rest."""

    def __init__(self, inner: RewardFn, checker: Checker, penalty: float):
        self.inner, self.checker, self.penalty = inner, checker, penalty

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return self.apply(list(self.inner(prompts, responses, topics)), responses, topics)

    def apply(self, scores: list[float], responses: list[str], topics: list[str]) -> list[float]:
        """`scores` of the inner reward with each malformed response's replaced by the penalty."""
        return [s if self.checker.well_formed(t, r) else self.penalty for s, r, t in zip(scores, responses, topics)]


def prefix_scores(score: RewardFn, well_formed: Callable[[str, str], bool], prompts: list[str],
                  responses: list[str], topics: list[str]) -> list[tuple[str, float] | None]:
    """Segment credit's input (`ppo.reward.malformed_credit: segment`): for each malformed response with a
    well-formed prefix, that prefix and the reward `score` gives it as a response of its own; None for a
    well-formed response and for one malformed from its first sentence."""
    prefixes = [well_formed_prefix(well_formed, t, r) for t, r in zip(topics, responses)]
    rows = [i for i, p in enumerate(prefixes) if p]
    scored = list(score([prompts[i] for i in rows], [prefixes[i] for i in rows], [topics[i] for i in rows])) \
        if rows else []
    credited: list[tuple[str, float] | None] = [None] * len(responses)
    for i, s in zip(rows, scored):
        credited[i] = (prefixes[i], float(s))
    return credited


def short_answer_reward(label: str, scheme: RewardScheme) -> float:
    return {"correct": scheme.correct, "incorrect": scheme.incorrect, "abstain": scheme.abstain}[label]


class FactCheckerReward:
    """Ground-truth long-form reward: +2 per true fact, -3 per false fact, as the run's fact checker labels them."""

    def __init__(self, checker: Checker, scheme: RewardScheme = RewardScheme()):
        self.checker, self.scheme = checker, scheme

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return [long_form_reward(r, self.scheme) for r in self.checker.check_many(topics, responses)]


class QACheckerReward:
    """Ground-truth short-QA reward (paper §4.2 RL): +2 correct, -3 incorrect, `scheme.abstain` for abstaining.

    `records` are the PPO prompts' records: each prompt's record tells the checker what was asked (the world:
    name and attribute; real data: the accepted answers), and `Checker.label_answer` labels the response.
    """

    def __init__(self, checker: Checker, records: list[dict], scheme: RewardScheme = RewardScheme()):
        self.checker, self.scheme = checker, scheme
        self.by_prompt = {r["prompt"]: r for r in records}

    def label(self, prompt: str, response: str) -> str:
        record = self.by_prompt.get(prompt)
        if record is None:
            raise ValueError(f"qa_checker reward: prompt is not one of the run's PPO prompts: {prompt[-80:]!r}")
        return self.checker.label_answer(record, response)

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return [short_answer_reward(self.label(p, r), self.scheme) for p, r in zip(prompts, responses)]


def import_callable(spec: str) -> Callable:
    """'package.module:name' -> the object (a reward function or a factory)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"reward callable '{spec}' must look like 'package.module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise InputError(f"cannot import reward callable '{spec}': {e}") from None
