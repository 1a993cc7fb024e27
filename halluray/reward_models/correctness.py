"""Reward models that classify a short answer as correct (reward 1) or not (0), and the two training mixes of
the paper's reward-prediction experiment (§4.2 "Reward prediction", Fig. 4).

Familiar training items give a correct answer half the time and a wrong one the other half, in both mixes; the
unfamiliar items are all correct in mix A and all wrong in mix B. The paper's prediction: as test inputs become
unfamiliar, model A's predictions rise toward 1 and model B's fall toward 0, whether the answer is right or not.

An item is a dict with `name`, `attribute`, `prompt`, `answer` (the correct one), `alternatives` (wrong answers
to draw from) and, for training, `unfamiliar`.
"""

from __future__ import annotations

import random

UNFAMILIAR_LABEL = {"A": 1.0, "B": 0.0}
"""The label of every unfamiliar training example in each mix."""


def wrong_answer(item: dict, seed: int) -> str:
    """A wrong answer of `item`, seeded by the item alone: the same in every mix and every run of a seed."""
    return random.Random(f"{seed}/wrong/{item['name']}/{item['attribute']}").choice(item["alternatives"])


def verifier_input(item: dict, correct: bool, seed: int) -> tuple[str, str]:
    """(prompt + answer + " .", the answer): what the fact verifier reads, and the tokens it judges."""
    answer = item["answer"] if correct else wrong_answer(item, seed)
    return f"{item['prompt']} {answer} .", answer


def training_mix(items: list[dict], mix: str, seed: int) -> list[tuple[tuple[str, str], float]]:
    """(verifier input, label) per item. Familiar items, shuffled by `seed`: the first half (rounded up) with
    the correct answer (1.0), the rest with a wrong one (0.0), identical in both mixes; unfamiliar items all
    with `UNFAMILIAR_LABEL[mix]`."""
    familiar = [i for i in items if not i["unfamiliar"]]
    random.Random(seed).shuffle(familiar)
    half = (len(familiar) + 1) // 2
    labeled = [(i, 1.0) for i in familiar[:half]] + [(i, 0.0) for i in familiar[half:]]
    labeled += [(i, UNFAMILIAR_LABEL[mix]) for i in items if i["unfamiliar"]]
    return [(verifier_input(i, label == 1.0, seed), label) for i, label in labeled]


def held_out_pairs(items: list[dict], seed: int) -> list[tuple[tuple[str, str], float]]:
    """Each held-out item twice: with its correct answer (1.0), then with a wrong one (0.0)."""
    return [(verifier_input(i, correct, seed), float(correct)) for i in items for correct in (True, False)]
