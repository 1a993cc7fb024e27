"""WikiPlots prompts (paper §5.1, App. E): "What is the premise of TITLE?" -> the plot's first sentence.

Default columns, tried in order (override any with `data.fields`):
- title: `title`, `Title` (the Kaggle/HF "Wikipedia Movie Plots" CSV);
- plot: `plot`, `Plot`, `text`.
The original WikiPlots release (markriedl/WikiPlots) is two text files, `titles` and `plots`; join them into a
jsonl/csv with `title` and `plot` columns first.
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.source import Column, Fields, clean, open_source, to_dataset
from halluray.data.text import first_sentence

DEFAULT_FIELDS: dict[str, tuple[Column, ...]] = {"title": ("title", "Title"), "plot": ("plot", "Plot", "text")}
PROMPT = "What is the premise of {title}?"


def load_wikiplots(path: str | Path, split: str | None = None, *, fields: dict[str, Column] | None = None,
                   subset: str | None = None, cache_dir: str | None = None):
    ds, where = open_source(path, split, subset=subset, cache_dir=cache_dir)
    cols = Fields(ds, where, "wikiplots", DEFAULT_FIELDS, fields)
    records, skipped = [], 0
    for _, row in cols.read(ds):
        title, target = clean(row["title"]), first_sentence(clean(row["plot"]))
        if title and target:
            records.append({"topic": title, "prompt": PROMPT.format(title=title), "target": target})
        else:
            skipped += 1
    return to_dataset(records, where, skipped)
