"""The `world` stage's artifacts: the world file, the corpus, prompt sets, QA/MCQ items, the tokenizer texts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.io import atomic_dir, write_jsonl
from halluray.layout import CORPUS_FILE, WORLD_FILE
from halluray.world.corpus import mcq_items, pretraining_corpus, qa_items, reference_attributes, reference_bio
from halluray.world.entities import SPLITS, World, generate_world
from halluray.world.templates import (
    ABSTAIN_BIO,
    FACT_TEMPLATES,
    MENTION_TEMPLATES,
    bio_prompt,
    mcq_prompt,
    qa_prompt,
)
from halluray.world.vocab import ATTRIBUTE_VALUES


def make_world(cfg: ExperimentConfig) -> World:
    w = cfg.world
    return generate_world(w.num_people, w.fact_frequencies, w.frequency_weights, dict(w.splits), cfg.seed)


def vocabulary_texts(world: World) -> Iterator[str]:
    """Every surface form the world can produce, so the tokenizer has no unknown words."""
    some = world.people[0].name
    for attribute, templates in FACT_TEMPLATES.items():
        for template in templates:
            for value in ATTRIBUTE_VALUES[attribute]:
                yield template.format(name=some, value=value)
        yield qa_prompt(some, attribute)
        yield mcq_prompt(some, attribute, list(ATTRIBUTE_VALUES[attribute][:2]))
    yield from (t.format(name=some) for t in MENTION_TEMPLATES)
    yield ABSTAIN_BIO
    for person in world.people:
        yield bio_prompt(person.name)


def prompt_records(world: World, split: str, bio_facts: tuple[int, int] = (6, 6)) -> list[dict]:
    """The bio prompts of a split, each with its reference bio (`world.bio_facts` facts of the person)."""
    return [{"name": p.name, "prompt": bio_prompt(p.name),
             "target": reference_bio(p, reference_attributes(p, bio_facts, world.seed)), "frequency": p.frequency}
            for p in world.split(split)]


def write_world(cfg: ExperimentConfig, world: World, corpus: list[str], out: Path) -> None:
    """Write every world artifact into `out` atomically."""
    with atomic_dir(out) as tmp:
        (tmp / WORLD_FILE).write_text(world.to_json())
        (tmp / CORPUS_FILE).write_text("\n".join(corpus) + "\n")
        for split in SPLITS:
            write_jsonl(tmp / f"prompts_{split}.jsonl", prompt_records(world, split, tuple(cfg.world.bio_facts)))
        people = list(world.people)
        write_jsonl(tmp / "qa.jsonl", [asdict(i) | {"split": world.person(i.name).split}
                                       for i in qa_items(people, cfg.seed)])
        write_jsonl(tmp / "mcq.jsonl", [asdict(i) | {"split": world.person(i.name).split}
                                        for i in mcq_items(people, cfg.seed)])


def build_corpus(cfg: ExperimentConfig, world: World) -> list[str]:
    w = cfg.world
    return pretraining_corpus(world, w.name_mentions, w.qa_doc_fraction, w.instruction_doc_fraction, cfg.seed)
