"""The synthetic world's prompts: `<run_dir>/world/prompts_<split>.jsonl`, written by `halluray world`.

Records: topic (the person's name), prompt ("Write a biography for NAME ."), target (the reference
first-sentence bio) and frequency (how often the person's facts appear in the pretraining corpus).
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.source import Column, Fields, clean, open_source, to_dataset
from halluray.errors import InputError
from halluray.layout import WORLD_DIR
from halluray.world.entities import SPLITS

DEFAULT_FIELDS: dict[str, tuple[Column, ...]] = {"topic": ("name",), "prompt": ("prompt",), "target": ("target",),
                                                 "frequency": ("frequency",)}


def world_prompt_files(path: str | Path, split: str | None) -> list[Path]:
    """The prompt files for `split` (all splits when None); `path` is a run dir, its world dir, or one file."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown world split '{split}' (expected one of {', '.join(SPLITS)})")
    world = path / WORLD_DIR if (path / WORLD_DIR).is_dir() else path
    files = [world / f"prompts_{s}.jsonl" for s in ([split] if split else SPLITS)]
    for f in files:
        if not f.is_file():
            raise InputError(f"{f}: world prompts not found; run `halluray world` first (or point data.path "
                             f"at a run directory that has them)")
    return files


def load_world(path: str | Path, split: str | None = None, *, fields: dict[str, Column] | None = None,
               subset: str | None = None, cache_dir: str | None = None):
    """The world's prompt records for `split` (sft, rm, ppo, eval; None: all four in that order).

    `path` is a run directory, its `world/` directory, or one prompts file (then `split` is not used);
    `subset` has no meaning for the world and is ignored.
    """
    records, skipped = [], 0
    for file in world_prompt_files(path, split):
        ds, where = open_source(file, cache_dir=cache_dir)
        cols = Fields(ds, where, "world", DEFAULT_FIELDS, fields, optional=("frequency",))
        for _, row in cols.read(ds):
            record = {"topic": clean(row["topic"]), "prompt": clean(row["prompt"]), "target": clean(row["target"])}
            if cols.has("frequency"):
                record["frequency"] = int(row["frequency"])
            if record["topic"] and record["prompt"] and record["target"]:
                records.append(record)
            else:
                skipped += 1
    return to_dataset(records, str(path), skipped)
