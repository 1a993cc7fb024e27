"""Entity tables as long-form prompts (`data.dataset: entity_table`): one record per entity, split by entity.

`path` is a .jsonl entity table or `builtin:countries` (halluray/data/entity_table.py has the format). Records:
`topic` (the entity), `prompt` (the row's prompt, "Tell me about Peru."; `prompts_for` wraps it in the chat
template), `target` (the row's reference text, the SFT target), `fame` (None when the row has none),
`fame_quartile` (1 least to 4 most famous in the whole table; None without fame) and `table` (the file's stem or
the built-in's name). No `answers`: the unfamiliarity stage reads these as long form.

Splits are drawn by entity and stratified by fame: within each fame quartile of the table (entities without a
fame are one more stratum) a shuffle seeded by `split_seed` orders the entities, and position i of n falls in
the split whose cumulative fraction of `entity_splits` contains (i + u) / n, u a seeded offset in [0, 1) per
stratum. So each split takes its fraction of every quartile (exactly, when fraction x stratum size is whole),
a small split still lands somewhere in expectation, and the same table, fractions and seed give the same splits.
"""

from __future__ import annotations

import random
from pathlib import Path

from halluray.data.entity_table import Entity, fame_quartiles, read_entity_table
from halluray.data.fact_table import BUILTIN, DEFAULT_ENTITY_SPLITS, cut_fractions
from halluray.data.source import to_dataset
from halluray.errors import InputError


def split_entities(entities: list[Entity], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """entity -> pipeline split, stratified by fame quartile (module docstring)."""
    quartile = fame_quartiles(entities)
    rng = random.Random(seed)
    splits: dict[str, str] = {}
    for stratum in (1, 2, 3, 4, None):
        members = sorted(e.name for e in entities if quartile.get(e.name) == stratum)
        rng.shuffle(members)
        offset = rng.random()
        for i, name in enumerate(members):
            splits[name] = cut_fractions((i + offset) / len(members), fractions)
    return splits


def _table_name(path: str) -> str:
    return path[len(BUILTIN):] if path.startswith(BUILTIN) else Path(path).stem


def load_entity_prompts(path: str | Path, split: str | None = None, *, fields: dict | None = None,
                        subset: str | None = None, cache_dir: str | None = None,
                        entity_splits: dict[str, float] | None = None, split_seed: int = 0):
    """The records of split `split` (None: all) of the entity table at `path`; `subset`/`cache_dir` are unused
    and an entity table has fixed fields (`fields` must be empty)."""
    if fields:
        raise InputError("data.fields: an entity table has fixed fields (entity, attributes, ...); remove "
                         "data.fields")
    text = str(path).strip()
    entities = read_entity_table(text)
    quartile = fame_quartiles(entities)
    if split is not None:
        fractions = dict(entity_splits or DEFAULT_ENTITY_SPLITS)
        if split not in fractions:
            raise InputError(f"{text}: no split '{split}' in data.entity_splits ({', '.join(fractions)})")
        assigned = split_entities(entities, fractions, split_seed)
        entities = [e for e in entities if assigned[e.name] == split]
        if not entities:
            raise InputError(f"{text}: no entity falls in split '{split}' (fraction {fractions[split]})")
    records = [{"topic": e.name, "prompt": e.prompt, "target": e.reference, "fame": e.fame,
                "fame_quartile": quartile.get(e.name), "table": _table_name(text)} for e in entities]
    return to_dataset(records, text)


__all__ = ["load_entity_prompts", "split_entities"]
