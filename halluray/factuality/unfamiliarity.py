"""Unfamiliarity scores (paper §4.1, App. B–D): few-shot prompt the *pretrained* model, grade its answers.

- long form: mean number of false facts over k sampled bios (paper: k = 2);
- short QA: number of incorrect answers among k samples (paper: k = 12, unfamiliar if > 6);
- multiple choice: NLL of the correct choice under the model's distribution over the choices
  (paper: unfamiliar if > 0.36).

The scoring functions take the model as plain callables, so they are tested with fixed answers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable

from halluray.world.checker import ExactChecker
from halluray.world.corpus import MCQItem, QAItem, few_shot_examples, joined, reference_bio
from halluray.world.entities import Person
from halluray.world.templates import bio_prompt, mcq_prompt, qa_prompt

SampleFn = Callable[[list[str]], list[str]]
"""prompts -> one sampled response per prompt."""
LogprobFn = Callable[[list[str], list[str]], list[float]]
"""(prompts, continuations) -> log P(continuation | prompt)."""


@dataclass
class Score:
    name: str
    score: float
    samples: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def _repeat(prompts: list[str], k: int) -> list[str]:
    return [p for p in prompts for _ in range(k)]


def long_form_scores(topics: list[str], prompts: list[str], sample_fn: SampleFn, checker: ExactChecker,
                     k: int) -> list[Score]:
    responses = sample_fn(_repeat(prompts, k))
    scores = []
    for i, topic in enumerate(topics):
        samples = responses[i * k:(i + 1) * k]
        checks = [checker.check(topic, r) for r in samples]
        n_false = [c.n_false for c in checks]
        n_true = [c.n_true for c in checks]
        scores.append(Score(topic, sum(n_false) / k, samples, {"n_true": n_true, "n_false": n_false}))
    return scores


def answer_of(response: str) -> str:
    """A short answer ends at its first full stop."""
    return response.split(" .")[0].strip()


def short_qa_scores(items: list[QAItem], prompts: list[str], sample_fn: SampleFn, checker: ExactChecker,
                    k: int) -> list[Score]:
    responses = sample_fn(_repeat(prompts, k))
    scores = []
    for i, item in enumerate(items):
        answers = [answer_of(r) for r in responses[i * k:(i + 1) * k]]
        labels = [checker.check_answer(item.name, item.attribute, a) for a in answers]
        incorrect = sum(label != "correct" for label in labels)
        scores.append(Score(item.name, float(incorrect), answers, {"attribute": item.attribute, "labels": labels}))
    return scores


def mcq_scores(items: list[MCQItem], prompts: list[str], logprob_fn: LogprobFn) -> list[Score]:
    flat_prompts = [p for p, item in zip(prompts, items) for _ in item.choices]
    flat_choices = [c for item in items for c in item.choices]
    logps = logprob_fn(flat_prompts, flat_choices)
    scores, start = [], 0
    for item in items:
        lp = logps[start:start + len(item.choices)]
        start += len(item.choices)
        top = max(lp)
        log_norm = top + math.log(sum(math.exp(x - top) for x in lp))
        probs = [math.exp(x - log_norm) for x in lp]
        nll = log_norm - lp[item.answer_index]
        scores.append(Score(item.name, nll, [], {"attribute": item.attribute, "choice_probs": probs}))
    return scores


# Few-shot prompts: `n_shots` examples from other train people, then the query.

def long_form_prompt(query: Person, pool: list[Person], n_shots: int, rng: random.Random) -> str:
    shots = few_shot_examples(pool, query.name, n_shots, rng)
    return joined([f"{bio_prompt(s.name)} {reference_bio(s)}" for s in shots], bio_prompt(query.name))


def short_qa_prompt(item: QAItem, pool: list[Person], n_shots: int, rng: random.Random) -> str:
    shots = few_shot_examples(pool, item.name, n_shots, rng)
    return joined([f"{qa_prompt(s.name, item.attribute)} {s.facts[item.attribute]} ." for s in shots], item.prompt)


def mcq_prompt_for(item: MCQItem, pool: list[Person], n_shots: int, rng: random.Random) -> str:
    shots = few_shot_examples(pool, item.name, n_shots, rng)
    examples = []
    for s in shots:
        choices = list(item.choices)
        if s.facts[item.attribute] not in choices:
            choices[rng.randrange(len(choices))] = s.facts[item.attribute]
        examples.append(f"{mcq_prompt(s.name, item.attribute, choices)} {s.facts[item.attribute]}")
    return joined(examples, item.prompt)
