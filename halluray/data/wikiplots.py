"""WikiPlots prompts (paper §5.1, App. E): "What is the premise of TITLE?" -> the plot's first sentence.

Default columns, tried in order (override any with `data.fields`):
- title: `title`, `Title` (the Kaggle/HF "Wikipedia Movie Plots" CSV);
- plot: `plot`, `Plot`, `text`.
The original WikiPlots release (markriedl/WikiPlots) is two text files, `titles` and `plots`; join them into a
jsonl/csv with `title` and `plot` columns first.
"""

from __future__ import annotations

from pathlib import Path

from halluray.data.first_sentence import load_first_sentence_prompts
from halluray.data.source import Column

DEFAULT_FIELDS: dict[str, tuple[Column, ...]] = {"title": ("title", "Title"), "plot": ("plot", "Plot", "text")}
PROMPT = "What is the premise of {title}?"


def load_wikiplots(path: str | Path, split: str | None = None, *, fields: dict[str, Column] | None = None,
                   subset: str | None = None, cache_dir: str | None = None):
    return load_first_sentence_prompts(path, split, dataset="wikiplots", defaults=DEFAULT_FIELDS, topic="title",
                                       text="plot", prompt=PROMPT, fields=fields, subset=subset, cache_dir=cache_dir)
