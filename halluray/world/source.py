"""The independent response source (the paper's GPT-3.5 role for the standard reward model).

It writes a bio for any person, each fact right with probability `accuracy` (one number, or one per corpus
frequency: an external model knows famous people better too) and otherwise a wrong value, regardless of what
the tiny model knows. Seeded per (seed, name), so it is deterministic and
independent of call order.
"""

from __future__ import annotations

import random
import zlib

from halluray.world.entities import World
from halluray.world.templates import FACT_TEMPLATES, render_fact
from halluray.world.vocab import ATTRIBUTE_VALUES, ATTRIBUTES


class IndependentSource:
    def __init__(self, world: World, accuracy: float | dict[int, float], seed: int):
        """`accuracy`: one number, or one per corpus frequency (ExperimentConfig.source_accuracy_by_frequency)."""
        by_frequency = accuracy if isinstance(accuracy, dict) else {p.frequency: accuracy for p in world.people}
        if not all(0.0 <= a <= 1.0 for a in by_frequency.values()):
            raise ValueError(f"accuracy must be in [0, 1], got {accuracy}")
        self.world, self.by_frequency, self.seed = world, by_frequency, seed

    def accuracy(self, name: str) -> float:
        return self.by_frequency[self.world.person(name).frequency]

    def respond(self, name: str, sample: int = 0) -> str:
        rng = random.Random(zlib.crc32(f"{self.seed}/{name}/{sample}".encode()))
        person, accuracy = self.world.person(name), self.accuracy(name)
        sentences = []
        for attribute in ATTRIBUTES:
            value = person.facts[attribute]
            if rng.random() >= accuracy:
                value = rng.choice([v for v in ATTRIBUTE_VALUES[attribute] if v != value])
            sentences.append(render_fact(name, attribute, value, rng.randrange(len(FACT_TEMPLATES[attribute]))))
        return " ".join(sentences)
