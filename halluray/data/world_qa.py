"""The synthetic world's short-QA prompts: every attribute of every person of a split, from the world file of a run.

Records: topic (the person's name), prompt ("Q : What is NAME 's hometown ? A :"), target (the true answer
with its full stop, "Lyon ."), attribute, and frequency (how often the person's facts appear in the
pretraining corpus). `world/qa.jsonl` holds one QA item per person; this loader asks all six questions, as
the short-QA experiments do for held-out people, so a PPO split of 100 people gives 600 prompts.

`data.subset: mcq` asks the same six questions as multiple-choice items instead (`mcq-rl`'s PPO prompts): the
true value among three distractors seeded by the world's seed (`world.corpus.mcq_item`), "Q : ... Choices :
a , b , c , d . A :"; the records add `choices` and `answer_index`.
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.source import to_dataset
from halluray.errors import InputError
from halluray.layout import WORLD_DIR, WORLD_FILE
from halluray.world.corpus import mcq_item
from halluray.world.entities import SPLITS, World
from halluray.world.templates import mcq_prompt, qa_prompt
from halluray.world.vocab import ATTRIBUTES


def find_world_file(path: str | Path) -> Path:
    """`path` is a run directory, its world directory, or the world file itself."""
    path = Path(path).expanduser()
    for candidate in (path, path / WORLD_FILE, path / WORLD_DIR / WORLD_FILE):
        if candidate.is_file():
            return candidate
    raise InputError(f"{path}: {WORLD_FILE} not found; run `halluray world` first (or point data.path at a run "
                     f"directory that has one)")


SUBSETS = (None, "mcq")


def qa_records(world: World, split: str | None = None, subset: str | None = None) -> list[dict]:
    """One record per (person of `split`, attribute); all splits in order when `split` is None. `subset` "mcq":
    multiple-choice records."""
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown world split '{split}' (expected one of {', '.join(SPLITS)})")
    if subset not in SUBSETS:
        raise InputError(f"data.subset {subset!r} has no meaning for dataset 'world_qa' (short QA: unset; "
                         f"multiple choice: mcq)")
    people = [p for s in ([split] if split else SPLITS) for p in world.split(s)]
    records = []
    for p in people:
        for a in ATTRIBUTES:
            record = {"topic": p.name, "prompt": qa_prompt(p.name, a), "target": f"{p.facts[a]} .", "attribute": a,
                      "frequency": p.frequency}
            if subset == "mcq":
                item = mcq_item(p.name, a, p.facts[a], world.seed)
                record |= {"prompt": mcq_prompt(p.name, a, item["choices"]), "choices": item["choices"],
                           "answer_index": item["answer_index"]}
            records.append(record)
    return records


def load_world_qa(path: str | Path, split: str | None = None, *, fields: dict | None = None,
                  subset: str | None = None, cache_dir: str | None = None):
    """The world's short-QA (or, `subset` "mcq", multiple-choice) records of `split` (sft, rm, ppo, val, eval;
    None: all of them).

    `fields` has no meaning here (the records are built from the world file) and must be empty.
    """
    if fields:
        raise InputError(f"data.fields has no meaning for dataset 'world_qa' (got {sorted(fields)})")
    source = find_world_file(path)
    return to_dataset(qa_records(World.load(source), split, subset), str(source))
