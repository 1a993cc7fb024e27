"""The paper's reward functions and the pluggable reward interface the reward actor calls.

Long form: +2 per true fact, -3 per false fact. Short QA / MCQ: +2 correct, -3 incorrect, and 0 for
abstaining (-3 in the control that punishes abstention).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from halluray.errors import InputError
from halluray.world.checker import CheckResult, FactChecker
from halluray.world.entities import World

RewardFn = Callable[[list[str], list[str], list[str]], list[float]]
"""(prompts, responses, topics) -> one scalar reward per response."""


@dataclass(frozen=True)
class RewardScheme:
    true_fact: float = 2.0
    false_fact: float = -3.0
    correct: float = 2.0
    incorrect: float = -3.0
    abstain: float = 0.0


def long_form_reward(result: CheckResult, scheme: RewardScheme) -> float:
    return scheme.true_fact * result.n_true + scheme.false_fact * result.n_false


def short_answer_reward(label: str, scheme: RewardScheme) -> float:
    return {"correct": scheme.correct, "incorrect": scheme.incorrect, "abstain": scheme.abstain}[label]


class FactCheckerReward:
    """Ground-truth long-form reward from the world's exact fact checker."""

    def __init__(self, world_path: str, scheme: RewardScheme = RewardScheme()):
        self.checker = FactChecker(World.load(world_path))
        self.scheme = scheme

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return [long_form_reward(self.checker.check(t, r), self.scheme) for t, r in zip(topics, responses)]


def import_callable(spec: str) -> Callable:
    """'package.module:name' -> the object (a reward function or a factory)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"reward callable '{spec}' must look like 'package.module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise InputError(f"cannot import reward callable '{spec}': {e}") from None
