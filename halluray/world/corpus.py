"""Text built from the world: reference bios, the pretraining corpus, short-QA and multiple-choice items."""

from __future__ import annotations

import random
from dataclasses import dataclass

from halluray.world.entities import Person, World
from halluray.world.templates import (
    BIO_PROMPT,
    EOS,
    FACT_TEMPLATES,
    MENTION_TEMPLATES,
    bio_prompt,
    mcq_prompt,
    qa_prompt,
    render_fact,
)
from halluray.world.vocab import ATTRIBUTE_VALUES, ATTRIBUTES


def reference_attributes(person: Person, bio_facts: tuple[int, int], seed: int) -> tuple[str, ...]:
    """Which facts the person's reference bio states: how many is drawn from `bio_facts` (min, max), which ones at
    random, kept in canonical order. Fixed per world seed and name, so every stage reads the same bio."""
    rng = random.Random(f"{seed}:{person.name}")
    chosen = set(rng.sample(ATTRIBUTES, rng.randint(*bio_facts)))
    return tuple(a for a in ATTRIBUTES if a in chosen)


def reference_bio(person: Person, attributes: tuple[str, ...] = ATTRIBUTES) -> str:
    """The SFT target: the given facts (all by default) in canonical order, in the person's own fixed
    paraphrases. A bio of no fact is one fact-free mention of the person (well formed, nothing to check)."""
    if not attributes:
        return MENTION_TEMPLATES[0].format(name=person.name)
    return " ".join(
        render_fact(person.name, a, person.facts[a], person.reference_templates.get(a, 0)) for a in attributes
    )


def paraphrased_bio(person: Person, rng: random.Random) -> str:
    """Facts in canonical order (a tiny model then tracks what it has said), each in a random paraphrase."""
    return " ".join(
        render_fact(person.name, a, person.facts[a], rng.randrange(len(FACT_TEMPLATES[a]))) for a in ATTRIBUTES
    )


def qa_document(person: Person, rng: random.Random, n_questions: int = 3) -> str:
    return " ".join(
        f"{qa_prompt(person.name, a)} {person.facts[a]} ." for a in rng.sample(ATTRIBUTES, n_questions)
    )


def pretraining_corpus(world: World, name_mentions: int, qa_doc_fraction: float,
                       instruction_doc_fraction: float, seed: int) -> list[str]:
    """One string per document. Each person's facts appear in `person.frequency` documents.

    Some bio documents carry the task's instruction header, and some facts appear as Q/A pairs,
    so that the few-shot prompts of the unfamiliarity score are in-distribution for the base model.
    """
    rng = random.Random(seed)
    docs: list[str] = []
    for person in world.people:
        for _ in range(name_mentions):
            docs.append(rng.choice(MENTION_TEMPLATES).format(name=person.name))
        for _ in range(person.frequency):
            if rng.random() < qa_doc_fraction:
                docs.append(qa_document(person, rng))
            elif rng.random() < instruction_doc_fraction:
                docs.append(f"{bio_prompt(person.name)} {paraphrased_bio(person, rng)}")
            else:
                docs.append(paraphrased_bio(person, rng))
    rng.shuffle(docs)
    return docs


def replay_documents(corpus: list[str], count: int, seed: int) -> list[str]:
    """`count` pretraining documents for SFT to replay, drawn without replacement (all of them when there are
    fewer), leaving out those that carry the bio prompt: replayed bios would teach the pretraining corpus's
    six-fact length instead of the reference bios'."""
    prompted = BIO_PROMPT.split("{name}")[0]
    pool = [d for d in corpus if d.strip() and not d.startswith(prompted)]
    return random.Random(f"replay/{seed}").sample(pool, min(count, len(pool)))


def generator_corpus(people: list[Person], documents: dict[int, int], seed: int) -> list[str]:
    """The independent generator's own reading: for each person, `documents[person.frequency]` biographies in
    the prompt-then-answer form (so it answers the bio prompt as the SFT model does), in paraphrases drawn
    with its own seed, not the pretraining corpus's."""
    rng = random.Random(f"generator/{seed}")
    docs = [f"{bio_prompt(p.name)} {paraphrased_bio(p, rng)}" for p in people for _ in range(documents[p.frequency])]
    rng.shuffle(docs)
    return docs


@dataclass(frozen=True)
class QAItem:
    name: str
    attribute: str
    answer: str

    @property
    def prompt(self) -> str:
        return qa_prompt(self.name, self.attribute)


@dataclass(frozen=True)
class MCQItem:
    name: str
    attribute: str
    choices: tuple[str, ...]
    answer_index: int

    @property
    def prompt(self) -> str:
        return mcq_prompt(self.name, self.attribute, list(self.choices))


def qa_items(people: list[Person], seed: int) -> list[QAItem]:
    """One short-QA item per person, about an attribute chosen by seed."""
    rng = random.Random(seed)
    items = []
    for p in people:
        attribute = rng.choice(ATTRIBUTES)
        items.append(QAItem(p.name, attribute, p.facts[attribute]))
    return items


def mcq_items(people: list[Person], seed: int, n_choices: int = 4) -> list[MCQItem]:
    """One multiple-choice item per person: the true value among `n_choices - 1` distractors."""
    rng = random.Random(seed)
    items = []
    for p in people:
        attribute = rng.choice(ATTRIBUTES)
        answer = p.facts[attribute]
        distractors = rng.sample([v for v in ATTRIBUTE_VALUES[attribute] if v != answer], n_choices - 1)
        choices = distractors + [answer]
        rng.shuffle(choices)
        items.append(MCQItem(p.name, attribute, tuple(choices), choices.index(answer)))
    return items


def mcq_item(name: str, attribute: str, answer: str, seed: int, n_choices: int = 4) -> dict:
    """A seeded MCQ item about any (person, attribute): the true value among n_choices - 1 distractors of the
    same attribute (the world stores one item per person; the experiments ask about all six attributes)."""
    rng = random.Random(f"{seed}/mcq/{name}/{attribute}")
    choices = rng.sample([v for v in ATTRIBUTE_VALUES[attribute] if v != answer], n_choices - 1) + [answer]
    rng.shuffle(choices)
    return {"name": name, "attribute": attribute, "choices": choices, "answer_index": choices.index(answer)}


def few_shot_examples(pool: list[Person], exclude: str, n_shots: int, rng: random.Random) -> list[Person]:
    candidates = [p for p in pool if p.name != exclude]
    return rng.sample(candidates, n_shots)


def joined(examples: list[str], query: str) -> str:
    """Few-shot layout: examples separated by the end-of-text token the corpus documents end with."""
    return "".join(f"{e} {EOS} " for e in examples) + query
