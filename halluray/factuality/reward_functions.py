"""The paper's reward functions and the pluggable reward interface the reward actor calls.

Long form: +2 per true fact, -3 per false fact. Short QA / MCQ: +2 correct, -3 incorrect, and 0 for
abstaining (-3 in the control that punishes abstention).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Callable

from halluray.config import RewardConfig
from halluray.errors import InputError
from halluray.factuality.unfamiliarity import answer_of
from halluray.world.checker import CheckResult, ExactChecker
from halluray.world.entities import World
from halluray.world.templates import ABSTAIN_ANSWER, QUESTION_TEMPLATES

RewardFn = Callable[[list[str], list[str], list[str]], list[float]]
"""(prompts, responses, topics) -> one scalar reward per response."""


@dataclass(frozen=True)
class RewardScheme:
    true_fact: float = 2.0
    false_fact: float = -3.0
    correct: float = 2.0
    incorrect: float = -3.0
    abstain: float = 0.0

    @classmethod
    def from_config(cls, reward: RewardConfig) -> "RewardScheme":
        """The scheme of a config's `ppo.reward` section (the one place a scheme is built from a config)."""
        return cls(true_fact=reward.true_fact, false_fact=reward.false_fact, correct=reward.correct,
                   incorrect=reward.incorrect, abstain=reward.abstain)


def long_form_reward(result: CheckResult, scheme: RewardScheme) -> float:
    return scheme.true_fact * result.n_true + scheme.false_fact * result.n_false


def short_answer_reward(label: str, scheme: RewardScheme) -> float:
    return {"correct": scheme.correct, "incorrect": scheme.incorrect, "abstain": scheme.abstain}[label]


class FactCheckerReward:
    """Ground-truth long-form reward from the world's exact fact checker."""

    def __init__(self, world_path: str, scheme: RewardScheme = RewardScheme()):
        self.checker = ExactChecker(World.load(world_path))
        self.scheme = scheme

    def __call__(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        return [long_form_reward(self.checker.check(t, r), self.scheme) for t, r in zip(topics, responses)]


def _question_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """One regex per attribute matching its rendered question ("Q : What is NAME 's hometown ? A :")."""
    patterns = []
    for attribute, template in QUESTION_TEMPLATES.items():
        body = re.escape(f"Q : {template} A :").replace(r"\{name\}", r"(?P<name>\S+)")
        patterns.append((attribute, re.compile(body)))
    return patterns


def parse_question(prompt: str) -> tuple[str, str] | None:
    """(name, attribute) of the *last* world question in `prompt` (a few-shot prompt ends with its query)."""
    best = None
    for attribute, pattern in _question_patterns():
        for m in pattern.finditer(prompt):
            if best is None or m.start() > best[0]:
                best = (m.start(), m["name"], attribute)
    return None if best is None else (best[1], best[2])


class QACheckerReward:
    """Ground-truth short-QA reward (paper §4.2 RL): +2 correct, -3 incorrect, `scheme.abstain` for "I do not know".

    The name and attribute come from the prompt (the world's question templates); the answer is the
    response up to its first " ." and is labeled by `ExactChecker.check_answer`. An empty answer, or a name
    the world does not know, is incorrect; a prompt that is not a world question is an error.
    """

    def __init__(self, world_path: str, scheme: RewardScheme = RewardScheme()):
        self.checker = ExactChecker(World.load(world_path))
        self.scheme = scheme

    def label(self, prompt: str, response: str) -> str:
        parsed = parse_question(prompt)
        if parsed is None:
            raise ValueError(f"qa_checker reward: prompt is not a world question: {prompt[-80:]!r}")
        name, attribute = parsed
        answer = answer_of(response)
        if not self.checker.world.has(name):
            return "abstain" if answer.startswith(ABSTAIN_ANSWER) else "incorrect"
        return self.checker.check_answer(name, attribute, answer)

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
