"""Prompt records whose target is the first sentence of an entity's text (WikiBios, WikiPlots; paper §5.1)."""

from __future__ import annotations

from pathlib import Path

from halluray.data.source import Column, Fields, clean, open_source, to_dataset
from halluray.data.text import first_sentence


def load_first_sentence_prompts(path: str | Path, split: str | None, *, dataset: str,
                                defaults: dict[str, tuple[Column, ...]], topic: str, text: str, prompt: str,
                                fields: dict[str, Column] | None = None, subset: str | None = None,
                                cache_dir: str | None = None):
    """Records {topic, prompt, target}: `prompt` formatted with the `topic` field (`{<topic>}` in it), the
    target the first sentence of the `text` field. Rows without a topic or a sentence are skipped (and counted)."""
    ds, where = open_source(path, split, subset=subset, cache_dir=cache_dir)
    cols = Fields(ds, where, dataset, defaults, fields)
    records, skipped = [], 0
    for _, row in cols.read(ds):
        name, target = clean(row[topic]), first_sentence(clean(row[text]))
        if name and target:
            records.append({"topic": name, "prompt": prompt.format(**{topic: name}), "target": target})
        else:
            skipped += 1
    return to_dataset(records, where, skipped)
