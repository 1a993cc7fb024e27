"""People of the synthetic world, their exact facts, how often the corpus states them, and the splits."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from halluray.world.templates import FACT_TEMPLATES
from halluray.world.vocab import ATTRIBUTE_VALUES, ATTRIBUTES, make_names

SPLITS = ("sft", "rm", "ppo", "val", "eval")
"""Train (sft, rm, ppo), validation (val) and test (eval) people."""


@dataclass(frozen=True)
class Person:
    name: str
    facts: dict[str, str]
    # How many paraphrased documents state this person's facts in the pretraining corpus (0 = never).
    frequency: int
    split: str
    # Which paraphrase of each fact the reference (SFT target) bio uses.
    reference_templates: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    people: tuple[Person, ...]
    seed: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.people})

    def person(self, name: str) -> Person:
        try:
            return self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"no person named {name!r} in the world") from None

    def has(self, name: str) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def split(self, split: str) -> list[Person]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return [p for p in self.people if p.split == split]

    def to_json(self) -> str:
        return json.dumps({"seed": self.seed, "people": [asdict(p) for p in self.people]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> World:
        raw = json.loads(text)
        return cls(people=tuple(Person(**p) for p in raw["people"]), seed=raw["seed"])

    @classmethod
    def load(cls, path: str | Path) -> World:
        return cls.from_json(Path(path).read_text())


def generate_world(
    num_people: int,
    fact_frequencies: list[int],
    frequency_weights: list[float],
    split_fractions: dict[str, float],
    seed: int,
) -> World:
    """Draw people with every attribute, assign each a corpus frequency, and split them.

    Splits are stratified by frequency so every split spans the whole familiarity range.
    """
    rng = random.Random(seed)
    reserved = {v for values in ATTRIBUTE_VALUES.values() for v in values}
    names = make_names(num_people, rng, reserved)
    total = sum(frequency_weights)
    counts = [round(num_people * w / total) for w in frequency_weights]
    counts[-1] = num_people - sum(counts[:-1])
    frequencies = [f for f, c in zip(fact_frequencies, counts) for _ in range(c)]
    rng.shuffle(frequencies)

    split_of: dict[int, str] = {}
    for freq in sorted(set(frequencies)):
        members = [i for i, f in enumerate(frequencies) if f == freq]
        rng.shuffle(members)
        start = 0.0
        for split in SPLITS:
            end = start + split_fractions[split] * len(members)
            for i in members[round(start):round(end)]:
                split_of[i] = split
            start = end

    people = []
    for i, name in enumerate(names):
        facts = {a: rng.choice(ATTRIBUTE_VALUES[a]) for a in ATTRIBUTES}
        templates = {a: rng.randrange(len(FACT_TEMPLATES[a])) for a in ATTRIBUTES}
        people.append(Person(name=name, facts=facts, frequency=frequencies[i], split=split_of[i],
                             reference_templates=templates))
    return World(people=tuple(people), seed=seed)
